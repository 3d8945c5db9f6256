package locker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
)

// TestSlotClaims: the slot checks of a claim (Claim.Slot): the job's
// high-water slot, its first sight, and the server-clock window.
func TestSlotClaims(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	now := time.Now()
	slot := now.Truncate(time.Second).Add(-time.Minute)

	// A slot that ran is never claimed again: the high-water refuses it
	// (and every slot below it) even after its mark is gone.
	t.Run("high-water", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		claim := func(slot time.Time) locker.Claim {
			cl := slotClaim(key, meta, slot)
			cl.FirstSeen = slot.Add(-time.Hour) // not what refuses here
			return cl
		}
		cl := claim(slot)
		lease := mustObtain(t, l, cl)
		if got := hget(t, c, meta, "hw"); got != unix(slot) {
			t.Errorf("high-water after the claim: got %q, want %s", got, unix(slot))
		}
		if got := hget(t, c, cl.MarkKey, "prevhw"); got != "" {
			t.Errorf("mark prevhw of the first claim: got %q, want empty", got)
		}
		if err := lease.Finish(bg, "done:ok"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		must(t, c.Del(bg, cl.MarkKey).Err())
		for _, tc := range []struct {
			name string
			slot time.Time
		}{{"same slot, mark deleted", slot}, {"earlier slot", slot.Add(-time.Second)}} {
			err := tryObtain(l, claim(tc.slot))
			var ne *locker.NotObtainedError
			if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != "" {
				t.Errorf("%s: got %v, want ErrSlotClaimed (by the high-water, no record)", tc.name, err)
			}
			if exists(t, c, markOf(key, tc.slot)) {
				t.Errorf("%s: a refused claim wrote mark %v", tc.name, hgetall(t, c, markOf(key, tc.slot)))
			}
		}
		if got := hget(t, c, meta, "fence"); got != "1" {
			t.Errorf("fence counter after refused claims: got %q, want 1", got)
		}
		next := claim(slot.Add(time.Second))
		lease = mustObtain(t, l, next)
		if lease.Fence() != 2 {
			t.Errorf("next slot's fence: got %d, want 2", lease.Fence())
		}
		if got := hget(t, c, meta, "hw"); got != unix(next.Slot) {
			t.Errorf("high-water after the next slot: got %q, want %s", got, unix(next.Slot))
		}
		if got := hget(t, c, next.MarkKey, "prevhw"); got != unix(slot) {
			t.Errorf("next mark prevhw: got %q, want %s", got, unix(slot))
		}
	})

	// A later slot decided first (claims reordered under overload): within
	// MarkFloor of its slot, a claim that finds no mark under the
	// high-water records its slot late; past MarkFloor its mark could have
	// expired, so it is refused as claimed, with nothing written.
	t.Run("passed over", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		base := time.Now().Truncate(time.Second)
		for _, tc := range []struct {
			name     string
			slot     time.Time // the slot passed over; slot+1s is decided first
			wantLate bool
		}{
			{"within the floor", base.Add(-2 * time.Second), true},
			{"past the floor", base.Add(-30 * time.Second), false},
		} {
			claim := func(slot time.Time) locker.Claim {
				cl := slotClaim(key, meta, slot)
				cl.FirstSeen = slot.Add(-time.Hour)
				cl.MarkFloor = 6 * time.Second
				return cl
			}
			must(t, c.HDel(bg, meta, "hw").Err())
			lease := mustObtain(t, l, claim(tc.slot.Add(time.Second)))
			if err := lease.Finish(bg, "done:ok"); err != nil {
				t.Fatalf("%s: Finish: %v", tc.name, err)
			}
			err := tryObtain(l, claim(tc.slot))
			mark := markOf(key, tc.slot)
			switch {
			case tc.wantLate && !errors.Is(err, locker.ErrLate):
				t.Errorf("%s: got %v, want ErrLate", tc.name, err)
			case tc.wantLate && hget(t, c, mark, "end") != recs.Late:
				t.Errorf("%s: mark %v, want the late record", tc.name, hgetall(t, c, mark))
			case !tc.wantLate && !errors.Is(err, locker.ErrSlotClaimed):
				t.Errorf("%s: got %v, want ErrSlotClaimed", tc.name, err)
			case !tc.wantLate && exists(t, c, mark):
				t.Errorf("%s: a refused claim wrote mark %v", tc.name, hgetall(t, c, mark))
			}
		}
	})

	// Before NotBefore on the server's clock: ErrEarly with the wait, and
	// nothing written (not even the first sight).
	t.Run("early", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		cl := slotClaim(key, meta, slot)
		cl.NotBefore = time.Now().Add(5 * time.Second)
		err := tryObtain(l, cl)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrEarly) || !errors.As(err, &ne) {
			t.Fatalf("Obtain: got %v, want ErrEarly", err)
		}
		if ne.Wait < 4*time.Second || ne.Wait > 5500*time.Millisecond {
			t.Errorf("Wait: got %v, want about 5s", ne.Wait)
		}
		if ne.Prev {
			t.Errorf("Prev: got true, want false (the wait is for NotBefore)")
		}
		for _, k := range []string{key, meta, cl.MarkKey} {
			if exists(t, c, k) {
				t.Errorf("an early claim wrote %s", k)
			}
		}
		// Once due, the claim wins.
		cl.NotBefore = time.Now().Add(-time.Second)
		lease := mustObtain(t, l, cl)
		if lease.Fence() != 1 {
			t.Errorf("fence once due: got %d, want 1", lease.Fence())
		}
	})

	// Sent ahead of its slot (NotBefore passed, Due to come): a free lease
	// is won at once; a busy lease or a pause answers ErrEarly until Due,
	// writing nothing, and is decided (skip recorded) once the slot is due.
	t.Run("ahead", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name    string
			setup   func(cl *locker.Claim)
			wantErr error
			record  string
		}{
			{"free", func(*locker.Claim) {}, nil, ""},
			{"busy", func(cl *locker.Claim) {
				must(t, c.Set(bg, cl.Key, "another-run", time.Minute).Err())
			}, locker.ErrNotObtained, recs.Busy},
			{"paused", func(cl *locker.Claim) {
				cl.PauseKey = cl.Key + ":paused"
				must(t, c.Set(bg, cl.PauseKey, "1", time.Minute).Err())
			}, locker.ErrPaused, recs.Paused},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key, meta := keys(t)
				cl := slotClaim(key, meta, slot)
				cl.NotBefore, cl.Due = time.Now().Add(-time.Second), time.Now().Add(5*time.Second)
				tc.setup(&cl)
				if tc.wantErr == nil {
					// The lease says when the slot is due on Redis's clock.
					lease := mustObtain(t, l, cl)
					if d := time.Until(lease.Due()); d < 4*time.Second || d > 5500*time.Millisecond {
						t.Errorf("Due: got %v from now, want about 5s (Claim.Due)", d)
					}
					return
				}
				err := tryObtain(l, cl)
				var ne *locker.NotObtainedError
				if !errors.Is(err, locker.ErrEarly) || !errors.As(err, &ne) {
					t.Errorf("%s: Obtain ahead of the slot: got %v, want ErrEarly", tc.name, err)
					return
				}
				if ne.Wait < 4*time.Second || ne.Wait > 5500*time.Millisecond {
					t.Errorf("%s: Wait: got %v, want about 5s (until Due)", tc.name, ne.Wait)
				}
				if ne.Prev {
					t.Errorf("%s: Prev: got true, want false (the wait is for Due)", tc.name)
				}
				if exists(t, c, cl.MarkKey) || hexists(t, c, meta, "hw") || hexists(t, c, meta, "fence") {
					t.Errorf("%s: a claim ahead of its slot decided it: mark %v", tc.name, hgetall(t, c, cl.MarkKey))
				}
				cl.Due = time.Now().Add(-time.Millisecond)
				if err := tryObtain(l, cl); !errors.Is(err, tc.wantErr) {
					t.Errorf("%s: Obtain once due: got %v, want %v", tc.name, err, tc.wantErr)
				}
				if got := hget(t, c, cl.MarkKey, "end"); got != tc.record {
					t.Errorf("%s: mark end once due: got %q, want %q", tc.name, got, tc.record)
				}
			})
		}
	})

	// The slot before may still be claimed (PrevUntil to come): while it
	// is undecided, the claim answers ErrEarly until PrevUntil and writes
	// nothing; once it is decided, before its first sight, or PrevUntil
	// has passed, the claim wins at once.
	t.Run("previous slot", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			first time.Time // the job's first sight in Redis (zero: none)
			until time.Duration
			setup func(cl locker.Claim) // given the previous slot's claim
			early bool
		}{
			{"undecided", slot.Add(-time.Hour), 5 * time.Second, nil, true},
			{"decided", slot.Add(-time.Hour), 5 * time.Second, func(prev locker.Claim) {
				if err := mustObtain(t, l, prev).Finish(bg, "done:ok"); err != nil {
					t.Fatalf("Finish of the previous slot: %v", err)
				}
			}, false},
			{"first sight at the slot before", slot.Add(-time.Second), 5 * time.Second, nil, true},
			{"before the first sight", slot, 5 * time.Second, nil, false},
			{"job never seen", time.Time{}, 5 * time.Second, nil, false},
			{"until passed", slot.Add(-time.Hour), -time.Second, nil, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key, meta := keys(t)
				prev := slot.Add(-time.Second)
				if !tc.first.IsZero() {
					must(t, c.HSet(bg, meta, "first", unix(tc.first)).Err())
				}
				if tc.setup != nil {
					tc.setup(slotClaim(key, meta, prev))
				}
				hw := hget(t, c, meta, "hw")
				cl := slotClaim(key, meta, slot)
				cl.FirstSeen = slot.Add(-time.Hour)
				cl.PrevSlot, cl.PrevUntil = prev, time.Now().Add(tc.until)
				cl.Due = time.Now().Add(6 * time.Second)
				err := tryObtain(l, cl)
				if !tc.early {
					if err != nil {
						t.Fatalf("Obtain: got %v, want the lease", err)
					}
					return
				}
				var ne *locker.NotObtainedError
				if !errors.Is(err, locker.ErrEarly) || !errors.As(err, &ne) {
					t.Fatalf("Obtain: got %v, want ErrEarly", err)
				}
				if ne.Wait < 4*time.Second || ne.Wait > 5500*time.Millisecond {
					t.Errorf("Wait: got %v, want about 5s (until PrevUntil)", ne.Wait)
				}
				if !ne.Prev {
					t.Errorf("Prev: got false, want true (the wait is for the slot before)")
				}
				if exists(t, c, cl.MarkKey) || exists(t, c, key) || hget(t, c, meta, "hw") != hw || hexists(t, c, meta, "fence") {
					t.Errorf("a claim waiting for the slot before decided it: mark %v, meta %v", hgetall(t, c, cl.MarkKey), hgetall(t, c, meta))
				}
				// The slot before is claimed (a step-in): this one is free.
				if err := mustObtain(t, l, slotClaim(key, meta, prev)).Finish(bg, "done:ok"); err != nil {
					t.Fatalf("Finish of the previous slot: %v", err)
				}
				if err := tryObtain(l, cl); err != nil {
					t.Errorf("Obtain once the slot before is decided: got %v, want the lease", err)
				}
			})
		}
	})

	// After NotAfter on the server's clock: ErrLate, the Late record is
	// written and the high-water raised, so the slot is decided.
	t.Run("late", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		cl := slotClaim(key, meta, slot)
		cl.NotAfter = time.Now().Add(-5 * time.Second)
		cl.HistoryKey, cl.HistoryLen, cl.HistoryTTL = key+":history", 10, time.Hour
		err := tryObtain(l, cl)
		if !errors.Is(err, locker.ErrLate) {
			t.Fatalf("Obtain: got %v, want ErrLate", err)
		}
		if got := hget(t, c, cl.MarkKey, "end"); got != recs.Late {
			t.Errorf("mark end: got %q, want %q", got, recs.Late)
		}
		if d := pttl(t, c, cl.MarkKey); d < 59*time.Minute {
			t.Errorf("mark TTL: got %v, want the 1h retention", d)
		}
		if got := hget(t, c, meta, "hw"); got != unix(slot) {
			t.Errorf("high-water: got %q, want %s", got, unix(slot))
		}
		if hexists(t, c, meta, "fence") || exists(t, c, key) {
			t.Errorf("a late claim took a fence or the lease")
		}
		if got := lrange(t, c, cl.HistoryKey); len(got) != 1 || got[0] != recs.Late {
			t.Errorf("history: got %q, want [%q]", got, recs.Late)
		}
		cl.NotAfter = time.Time{}
		err = tryObtain(l, cl)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != recs.Late {
			t.Errorf("claim of the late slot without a window: got %v, want ErrSlotClaimed with %q", err, recs.Late)
		}
	})

	// A slot before the job's first sight is never run: ErrUnborn, and the
	// first sight, once stored, is kept.
	t.Run("unborn", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		first := slot.Add(time.Hour)
		cl := slotClaim(key, meta, slot)
		cl.FirstSeen = first
		err := tryObtain(l, cl)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrUnborn) || !errors.As(err, &ne) {
			t.Fatalf("Obtain: got %v, want ErrUnborn", err)
		}
		if !ne.FirstSeen.Equal(first) {
			t.Errorf("FirstSeen: got %v, want %v", ne.FirstSeen, first)
		}
		if got := hget(t, c, meta, "first"); got != unix(first) {
			t.Errorf("meta first: got %q, want %s", got, unix(first))
		}
		if exists(t, c, cl.MarkKey) || exists(t, c, key) || hexists(t, c, meta, "fence") || hexists(t, c, meta, "hw") {
			t.Errorf("an unborn claim wrote a mark, lease, fence or high-water")
		}
		// Another replica, which loaded the job earlier, does not move the
		// first sight back.
		cl.FirstSeen = slot.Add(-time.Hour)
		if err := tryObtain(l, cl); !errors.Is(err, locker.ErrUnborn) {
			t.Errorf("claim with an earlier FirstSeen: got %v, want ErrUnborn (the stored first sight wins)", err)
		}
		if got := hget(t, c, meta, "first"); got != unix(first) {
			t.Errorf("meta first: got %q, want %s kept", got, unix(first))
		}
		// A slot at the first sight runs.
		lease := mustObtain(t, l, slotClaim(key, meta, first))
		if lease.Fence() != 1 {
			t.Errorf("fence of the first slot: got %d, want 1", lease.Fence())
		}
	})

	// Paused: the Paused record is written and the slot decided.
	t.Run("paused", func(t *testing.T) {
		t.Parallel()
		key, meta := keys(t)
		cl := slotClaim(key, meta, slot)
		cl.PauseKey = key + ":paused"
		must(t, c.Set(bg, cl.PauseKey, "1", time.Minute).Err())
		if err := tryObtain(l, cl); !errors.Is(err, locker.ErrPaused) {
			t.Fatalf("Obtain: got %v, want ErrPaused", err)
		}
		if got := hget(t, c, cl.MarkKey, "end"); got != recs.Paused {
			t.Errorf("mark end: got %q, want %q", got, recs.Paused)
		}
		if got := hget(t, c, meta, "hw"); got != unix(slot) {
			t.Errorf("high-water: got %q, want %s", got, unix(slot))
		}
	})
}

// TestRecordSkip: a skip for a slot nobody claimed is recorded when its
// mark is absent, within the window on the server's clock.
func TestRecordSkip(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	skip := func(key, meta string) locker.Skip {
		return locker.Skip{MarkKey: markOf(key, slot), MetaKey: meta, Slot: slot, Record: "skipped:outage",
			Retention: time.Hour, NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute),
			HistoryKey: key + ":history", HistoryLen: 10, HistoryTTL: time.Hour}
	}

	t.Run("recorded when absent", func(t *testing.T) {
		key, meta := keys(t)
		sk := skip(key, meta)
		if err := l.RecordSkip(bg, sk); err != nil {
			t.Fatalf("RecordSkip: %v", err)
		}
		if got := hget(t, c, sk.MarkKey, "end"); got != sk.Record {
			t.Errorf("mark end: got %q, want %q", got, sk.Record)
		}
		if d := pttl(t, c, sk.MarkKey); d < 59*time.Minute {
			t.Errorf("mark TTL: got %v, want the 1h retention", d)
		}
		if got := hget(t, c, meta, "hw"); got != unix(slot) {
			t.Errorf("high-water: got %q, want %s", got, unix(slot))
		}
		if got := lrange(t, c, sk.HistoryKey); len(got) != 1 || got[0] != sk.Record {
			t.Errorf("history: got %q, want [%q]", got, sk.Record)
		}
		// Recorded once: a second replica's skip and claim see the record.
		if err := l.RecordSkip(bg, sk); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Errorf("second RecordSkip: got %v, want ErrSlotClaimed", err)
		}
		err := tryObtain(l, slotClaim(key, meta, slot))
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != sk.Record {
			t.Errorf("claim of the skipped slot: got %v, want ErrSlotClaimed with %q", err, sk.Record)
		}
		if got := lrange(t, c, sk.HistoryKey); len(got) != 1 {
			t.Errorf("history after the second skip: got %q, want one record", got)
		}
	})

	t.Run("slot claimed", func(t *testing.T) {
		key, meta := keys(t)
		lease := mustObtain(t, l, slotClaim(key, meta, slot))
		sk := skip(key, meta)
		if err := l.RecordSkip(bg, sk); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Fatalf("RecordSkip of a running slot: got %v, want ErrSlotClaimed", err)
		}
		runningMark(t, c, sk.MarkKey, lease, "running")
		if exists(t, c, sk.HistoryKey) {
			t.Errorf("history written by a refused skip: %q", lrange(t, c, sk.HistoryKey))
		}
	})

	t.Run("early", func(t *testing.T) {
		key, meta := keys(t)
		sk := skip(key, meta)
		sk.NotBefore = time.Now().Add(5 * time.Second)
		err := l.RecordSkip(bg, sk)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrEarly) || !errors.As(err, &ne) {
			t.Fatalf("RecordSkip: got %v, want ErrEarly", err)
		}
		if ne.Wait < 4*time.Second || ne.Wait > 5500*time.Millisecond {
			t.Errorf("Wait: got %v, want about 5s", ne.Wait)
		}
		if exists(t, c, sk.MarkKey) || exists(t, c, meta) {
			t.Errorf("an early skip wrote the mark or meta")
		}
	})

	// Past NotAfter an absent mark proves nothing (a run's mark may have
	// expired), but a high-water slot below the slot still proves that it
	// was never decided.
	for _, tc := range []struct {
		name string
		hw   time.Time // zero: none
		want error     // nil: recorded
	}{
		{"late, a later slot decided", slot.Add(time.Second), locker.ErrLate},
		{"late, this slot decided", slot, locker.ErrLate},
		{"late, an earlier slot decided", slot.Add(-time.Second), nil},
		{"late, no slot decided", time.Time{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			if !tc.hw.IsZero() {
				must(t, c.HSet(bg, meta, "hw", unix(tc.hw)).Err())
			}
			sk := skip(key, meta)
			sk.NotAfter = time.Now().Add(-time.Second)
			err := l.RecordSkip(bg, sk)
			if tc.want != nil {
				var ne *locker.NotObtainedError
				if !errors.Is(err, tc.want) || !errors.As(err, &ne) {
					t.Fatalf("RecordSkip: got %v, want %v", err, tc.want)
				}
				if !ne.Decided.Equal(tc.hw) {
					t.Errorf("Decided: got %v, want the high-water %v", ne.Decided, tc.hw)
				}
				// Too late to tell: nothing is decided (the job's first
				// sight may be stored).
				if exists(t, c, sk.MarkKey) || exists(t, c, sk.HistoryKey) {
					t.Errorf("a late skip wrote the mark or history")
				}
				if got := hget(t, c, meta, "hw"); got != unix(tc.hw) {
					t.Errorf("high-water: got %q, want %s kept", got, unix(tc.hw))
				}
				return
			}
			if err != nil {
				t.Fatalf("RecordSkip: got %v, want it recorded", err)
			}
			if got := hget(t, c, sk.MarkKey, "end"); got != sk.Record {
				t.Errorf("mark end: got %q, want %q", got, sk.Record)
			}
			if got := lrange(t, c, sk.HistoryKey); len(got) != 1 || got[0] != sk.Record {
				t.Errorf("history: got %q, want [%q]", got, sk.Record)
			}
			if got := hget(t, c, meta, "hw"); got != unix(slot) {
				t.Errorf("high-water: got %q, want %s", got, unix(slot))
			}
		})
	}

	// A slot before the job's first sight is not one of its slots: never
	// recorded; the first sight, once stored, is kept.
	t.Run("unborn", func(t *testing.T) {
		key, meta := keys(t)
		sk := skip(key, meta)
		first := slot.Add(time.Hour)
		sk.FirstSeen = first
		err := l.RecordSkip(bg, sk)
		if !errors.Is(err, locker.ErrUnborn) {
			t.Fatalf("RecordSkip: got %v, want ErrUnborn", err)
		}
		if got := hget(t, c, meta, "first"); got != unix(first) {
			t.Errorf("meta first: got %q, want %s", got, unix(first))
		}
		sk.FirstSeen = slot.Add(-time.Hour)
		if err := l.RecordSkip(bg, sk); !errors.Is(err, locker.ErrUnborn) {
			t.Errorf("RecordSkip with an earlier FirstSeen: got %v, want ErrUnborn (the stored first sight wins)", err)
		}
		if exists(t, c, sk.MarkKey) || hexists(t, c, meta, "hw") || exists(t, c, sk.HistoryKey) {
			t.Errorf("an unborn skip wrote the mark, high-water or history")
		}
	})
}

// TestQuorumRecordSkip: in quorum mode a skip is recorded on every node
// that answers, and needs a majority of them.
func TestQuorumRecordSkip(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 3, redistest.Options{})
	q := newQuorum(t, clients, locker.Options{NodeTimeout: time.Second})
	key, meta := keys(t)
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	skip := func(slot time.Time) locker.Skip {
		return locker.Skip{MarkKey: markOf(key, slot), MetaKey: meta, Slot: slot, Record: "skipped:outage", FirstSeen: slot.Add(-time.Hour),
			Retention: time.Hour, NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute)}
	}
	kill(t, servers[2])
	if err := q.RecordSkip(bg, skip(slot)); err != nil {
		t.Fatalf("RecordSkip with one of 3 nodes down: %v", err)
	}
	for i, c := range clients[:2] {
		if got := hget(t, c, markOf(key, slot), "end"); got != "skipped:outage" {
			t.Errorf("node %d mark end: got %q, want skipped:outage", i, got)
		}
		if got := hget(t, c, meta, "hw"); got != unix(slot) {
			t.Errorf("node %d high-water: got %q, want %s", i, got, unix(slot))
		}
	}
	// A slot past its window, above the high-water on both nodes that
	// answer, a majority: neither granted a claim of it, so no claim won,
	// and the skip is written.
	passed := skip(slot.Add(time.Second))
	passed.NotAfter = time.Now().Add(-time.Second)
	if err := q.RecordSkip(bg, passed); err != nil {
		t.Errorf("RecordSkip of a slot past its window, above a majority's high-water: got %v, want it recorded", err)
	}
	for i, c := range clients[:2] {
		if got := hget(t, c, markOf(key, passed.Slot), "end"); got != "skipped:outage" {
			t.Errorf("node %d mark end past the window: got %q, want skipped:outage", i, got)
		}
	}
	// Under the high-water, with no ring that speaks for it: too late to
	// tell, nothing written, and no Decided (another node's ring may speak).
	under := skip(slot.Add(-time.Second))
	under.NotAfter = passed.NotAfter
	var ne *locker.NotObtainedError
	if err := q.RecordSkip(bg, under); !errors.Is(err, locker.ErrLate) || !errors.As(err, &ne) || !ne.Decided.IsZero() {
		t.Errorf("RecordSkip of a slot past its window, under the high-water: got %v, want ErrLate without Decided", err)
	}
	for i, c := range clients[:2] {
		if exists(t, c, markOf(key, under.Slot)) {
			t.Errorf("node %d: a skip past its window written under the high-water", i)
		}
	}
	// Paused, not killed: a killed server's port can be handed to a
	// server of a parallel test, which would then answer for it.
	if err := servers[1].Pause(); err != nil {
		t.Fatal(err)
	}
	if err := q.RecordSkip(bg, skip(slot.Add(time.Second))); !errors.Is(err, locker.ErrNoQuorum) {
		t.Errorf("RecordSkip with two of 3 nodes down: got %v, want ErrNoQuorum", err)
	}
}

// quorumSkips is three masters reached straight (direct) and through
// proxies that can cut them, a quorum locker through the proxies, and a
// slot a minute ago: the fixture of the quorum skip tests.
type quorumSkips struct {
	direct, via []*redis.Client
	proxies     []*redistest.Proxy
	q           *locker.Locker
	slot        time.Time
}

func newQuorumSkips(t *testing.T) quorumSkips {
	t.Helper()
	servers, direct := cluster(t, 3, redistest.Options{})
	f := quorumSkips{direct: direct, proxies: make([]*redistest.Proxy, len(servers)), slot: time.Now().Truncate(time.Second).Add(-time.Minute)}
	f.via = make([]*redis.Client, len(servers))
	for i, s := range servers {
		f.via[i], f.proxies[i] = viaProxy(t, s)
	}
	f.q = newQuorum(t, f.via, locker.Options{NodeTimeout: time.Second})
	return f
}

// skipped says which masters hold the skip "skipped:outage" in the slot's
// mark.
func (f quorumSkips) skipped(t *testing.T, key string) []bool {
	t.Helper()
	got := make([]bool, len(f.direct))
	for i, c := range f.direct {
		got[i] = hget(t, c, markOf(key, f.slot), "end") == "skipped:outage"
	}
	return got
}

// wonOnTwo obtains cl through the quorum with the third master cut off,
// until the claim's call to it has given up: a call the cut kept from
// being sent is sent again on a new connection until its NodeTimeout, and
// would land once the cut is lifted.
func (f quorumSkips) wonOnTwo(t *testing.T, cl locker.Claim) *locker.Lease {
	t.Helper()
	f.proxies[2].Block(true)
	cut := time.Now()
	lease := mustObtain(t, f.q, cl)
	time.Sleep(time.Until(cut.Add(1500 * time.Millisecond)))
	f.proxies[2].Block(false)
	if exists(t, f.direct[2], cl.MarkKey) {
		t.Fatal("the cut master got the claim's mark")
	}
	return lease
}

// TestQuorumSkipBesideRun: in quorum mode a skip is written only where no
// claim of its slot can have won. A node cut off while a majority granted
// the claim has no mark, and gets no skip beside the run; a claim that
// holds fewer than a majority of all nodes lost its vote, and the skip is
// written beside its mark, running or ended by a withdrawal (before, a
// withdrawal's record on one node of three was the slot's only record);
// while the nodes that did not answer could give it a majority, nothing
// is written yet.
func TestQuorumSkipBesideRun(t *testing.T) {
	t.Parallel()
	f := newQuorumSkips(t)
	direct, proxies, q, slot := f.direct, f.proxies, f.q, f.slot
	skip := func(key, meta string) locker.Skip {
		return locker.Skip{MarkKey: markOf(key, slot), MetaKey: meta, Slot: slot, Record: "skipped:outage",
			Retention: time.Hour, NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute),
			HistoryKey: key + ":history", HistoryLen: 10, HistoryTTL: time.Hour}
	}
	skipped := f.skipped

	t.Run("won on two of three", func(t *testing.T) {
		key, meta := keys(t)
		lease := f.wonOnTwo(t, slotClaim(key, meta, slot))
		if err := q.RecordSkip(bg, skip(key, meta)); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Errorf("RecordSkip beside the running claim: got %v, want ErrSlotClaimed", err)
		}
		if exists(t, direct[2], markOf(key, slot)) || exists(t, direct[2], key+":history") {
			t.Errorf("the node that missed the claim got a skip beside the run: mark %v", hgetall(t, direct[2], markOf(key, slot)))
		}
		// Ended: the run's record stands, still with no skip beside it.
		if err := lease.Finish(bg, "ok"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if err := q.RecordSkip(bg, skip(key, meta)); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Errorf("RecordSkip beside the ended run: got %v, want ErrSlotClaimed", err)
		}
		if got := skipped(t, key); slices.Contains(got, true) {
			t.Errorf("skips by node: got %v, want none", got)
		}
	})

	// A claim granted on one node only (as if its drop never arrived): a
	// real claim through a locker of that node alone.
	lostClaim := func(t *testing.T, key, meta string) {
		t.Helper()
		mustObtain(t, mustNew(t, direct[0], locker.Options{}), slotClaim(key, meta, slot))
	}

	// A claim that reached one node only, given up after it may have won
	// and withdrawn there (its mark ended with the withdrawal's record).
	withdrawn := func(t *testing.T, key, meta string) {
		t.Helper()
		lostClaim(t, key, meta)
		must(t, direct[0].HSet(bg, markOf(key, slot), "end", "skipped:aborted").Err())
	}

	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, key, meta string)
		silent bool  // the third node cut off during the skip
		want   error // nil: recorded on the two nodes without the claim
	}{
		{"a lost claim's mark on one of three", lostClaim, false, nil},
		{"a withdrawn claim's record on one of three", withdrawn, false, nil},
		// The silent node could give the claim a majority: a running one
		// leaves the slot open; an ended one may have won, and is on record.
		{"a lost claim's mark, a node silent", lostClaim, true, locker.ErrNoQuorum},
		{"a withdrawn claim's record, a node silent", withdrawn, true, locker.ErrSlotClaimed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			tc.setup(t, key, meta)
			proxies[2].Block(tc.silent)
			err := q.RecordSkip(bg, skip(key, meta))
			proxies[2].Block(false)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Errorf("RecordSkip: got %v, want %v", err, tc.want)
				}
				if got := skipped(t, key); slices.Contains(got, true) {
					t.Errorf("skips by node while the claim may have won: got %v, want none", got)
				}
				if tc.want != locker.ErrNoQuorum {
					return
				}
				// The node answers again: the claim lost, the skip is written.
				err = q.RecordSkip(bg, skip(key, meta))
			}
			if err != nil {
				t.Fatalf("RecordSkip: got %v, want it recorded on the others (the claim cannot have won)", err)
			}
			if got, want := skipped(t, key), []bool{false, true, true}; !slices.Equal(got, want) {
				t.Errorf("skips by node: got %v, want %v", got, want)
			}
		})
	}
}

// TestQuorumSkipPastWindow: past the mark's window, with the marks gone, a
// quorum skip rests on each node's high-water and ring, and is written
// only once a majority of the nodes prove that they granted no claim of
// the slot. A claim that won on two of three nodes (the third cut off)
// gets no skip beside it, and while one of its nodes is silent the answer
// waits (ErrNoQuorum); a lost claim's ring bit on one node, or a node
// silent, does not stop the skip of a slot that no majority granted.
// Before, every quorum skip past the window was dropped as late.
func TestQuorumSkipPastWindow(t *testing.T) {
	t.Parallel()
	f := newQuorumSkips(t)
	direct, proxies, q, slot := f.direct, f.proxies, f.q, f.slot
	claim := func(key, meta string) locker.Claim {
		c := slotClaim(key, meta, slot)
		c.RingKey = key + ":ring"
		return c
	}
	skip := func(key, meta string) locker.Skip {
		return locker.Skip{MarkKey: markOf(key, slot), MetaKey: meta, RingKey: key + ":ring", Slot: slot, Record: "skipped:outage",
			Retention: time.Hour, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(-time.Second),
			HistoryKey: key + ":history", HistoryLen: 10, HistoryTTL: time.Hour}
	}
	// unmark deletes the slot's mark on every node, as its expiry would.
	unmark := func(t *testing.T, key string) {
		t.Helper()
		for _, c := range direct {
			must(t, c.Del(bg, markOf(key, slot)).Err())
		}
	}
	skipped := f.skipped
	// decidedBefore records a skip of the slot before on every node: each
	// has the job's high-water (a node with none proves nothing) and a
	// ring.
	decidedBefore := func(t *testing.T, key, meta string) {
		t.Helper()
		earlier := skip(key, meta)
		earlier.Slot, earlier.MarkKey = slot.Add(-time.Second), markOf(key, slot.Add(-time.Second))
		earlier.NotAfter = time.Now().Add(time.Minute)
		if err := q.RecordSkip(bg, earlier); err != nil {
			t.Fatalf("RecordSkip of the slot before: %v", err)
		}
	}

	// ranOnTwo runs the slot on a claim that won on nodes 0 and 1 (node 2
	// cut off), its marks then gone.
	ranOnTwo := func(t *testing.T, key, meta string) {
		t.Helper()
		decidedBefore(t, key, meta)
		lease := f.wonOnTwo(t, claim(key, meta))
		if err := lease.Finish(bg, "ok"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		unmark(t, key)
	}

	t.Run("won on two of three", func(t *testing.T) {
		key, meta := keys(t)
		ranOnTwo(t, key, meta)
		proxies[0].Block(true)
		err := q.RecordSkip(bg, skip(key, meta))
		proxies[0].Block(false)
		if !errors.Is(err, locker.ErrNoQuorum) {
			t.Errorf("RecordSkip with a node of the claim silent: got %v, want ErrNoQuorum", err)
		}
		if err := q.RecordSkip(bg, skip(key, meta)); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Errorf("RecordSkip once every node answers: got %v, want ErrSlotClaimed", err)
		}
		if got := skipped(t, key); slices.Contains(got, true) {
			t.Errorf("skips by node beside the run: got %v, want none", got)
		}
	})

	t.Run("won on two of three, one of them restarted empty", func(t *testing.T) {
		key, meta := keys(t)
		ranOnTwo(t, key, meta)
		// Node 0 lost everything of the job, as a restart without
		// persistence loses it: with no high-water it proves nothing.
		must(t, direct[0].Del(bg, meta, key+":ring", key+":history").Err())
		if err := q.RecordSkip(bg, skip(key, meta)); !errors.Is(err, locker.ErrLate) {
			t.Errorf("RecordSkip: got %v, want ErrLate (too late to tell)", err)
		}
		if got := skipped(t, key); slices.Contains(got, true) {
			t.Errorf("skips by node beside the run: got %v, want none", got)
		}
	})

	t.Run("written on one, a node cut before the write round", func(t *testing.T) {
		key, meta := keys(t)
		// Node 0 alone granted a claim of the slot, lost, whose drop
		// never came.
		decidedBefore(t, key, meta)
		mustObtain(t, mustNew(t, direct[0], locker.Options{}), claim(key, meta))
		unmark(t, key)
		// Node 1 is cut as the write round (record.lua without "probe")
		// goes out to it: the round reaches the other nodes only.
		var armed atomic.Bool
		armed.Store(true)
		f.via[1].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
			args := fmt.Sprint(cmd.Args()...)
			if strings.Contains(args, "not_after") && !strings.Contains(args, "probe") && armed.CompareAndSwap(true, false) {
				proxies[1].Block(true)
			}
		}))
		err := q.RecordSkip(bg, skip(key, meta))
		proxies[1].Block(false)
		// On node 2 only: node 0's lost claim is no record, so the skip
		// is not on record on a majority yet.
		if !errors.Is(err, locker.ErrNoQuorum) {
			t.Errorf("RecordSkip with node 1 cut before the write round: got %v, want ErrNoQuorum (on record on one node)", err)
		}
		if err := q.RecordSkip(bg, skip(key, meta)); err != nil {
			t.Fatalf("RecordSkip once node 1 answers: %v", err)
		}
		if got, want := skipped(t, key), []bool{false, true, true}; !slices.Equal(got, want) {
			t.Errorf("skips by node: got %v, want %v", got, want)
		}
	})

	t.Run("a lost claim's ring bit on one of three", func(t *testing.T) {
		key, meta := keys(t)
		decidedBefore(t, key, meta)
		mustObtain(t, mustNew(t, direct[0], locker.Options{}), claim(key, meta))
		unmark(t, key)
		if err := q.RecordSkip(bg, skip(key, meta)); err != nil {
			t.Fatalf("RecordSkip: got %v, want it recorded", err)
		}
		if got, want := skipped(t, key), []bool{false, true, true}; !slices.Equal(got, want) {
			t.Errorf("skips by node: got %v, want %v", got, want)
		}
	})

	t.Run("never claimed, a node silent", func(t *testing.T) {
		key, meta := keys(t)
		decidedBefore(t, key, meta)
		proxies[2].Block(true)
		err := q.RecordSkip(bg, skip(key, meta))
		proxies[2].Block(false)
		if err != nil {
			t.Fatalf("RecordSkip with one of 3 nodes silent: got %v, want it recorded", err)
		}
		if got, want := skipped(t, key), []bool{true, true, false}; !slices.Equal(got, want) {
			t.Errorf("skips by node: got %v, want %v", got, want)
		}
	})
}

// proxied is a server reached straight (direct, ld) and through a proxy
// (via, lv: a locker with a 300ms NodeTimeout), which can hold or cut
// the traffic.
type proxied struct {
	direct, via *redis.Client
	p           *redistest.Proxy
	ld, lv      *locker.Locker
}

func startProxied(t *testing.T) proxied {
	t.Helper()
	s := redistest.Start(t, redistest.Options{})
	x := proxied{direct: newClient(t, s)}
	x.via, x.p = viaProxy(t, s)
	x.ld, x.lv = mustNew(t, x.direct, locker.Options{}), mustNew(t, x.via, locker.Options{NodeTimeout: 300 * time.Millisecond})
	return x
}

// TestReplaceRetrySuperseded: an overlap-replace claim whose reply was
// lost, and which a later claim replaced before its retry, is refused
// busy on the retry, as itself: ended with Records.Busy when it has one;
// without one its mark is left for Withdraw, which ends it with Aborted.
func TestReplaceRetrySuperseded(t *testing.T) {
	t.Parallel()
	x := startProxied(t)
	direct, via, p, ld, lv := x.direct, x.via, x.p, x.ld, x.lv
	for _, tc := range []struct {
		name, busy, want string // want: the retried claim's mark's final record
	}{
		{"with a busy record", "skipped:overlap", "skipped:overlap"},
		{"without one", "", "skipped:aborted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			claim := func(slot time.Time, busy string) locker.Claim {
				c := slotClaim(key, meta, slot)
				c.Replace, c.NextKey = true, key+":next"
				c.Records.Busy = busy
				return c
			}
			base := time.Now().Truncate(time.Second).Add(-time.Minute)
			running := mustObtain(t, ld, claim(base, recs.Busy))
			bid, err := lv.Bid(claim(base.Add(time.Second), tc.busy))
			if err != nil {
				t.Fatal(err)
			}
			// The claim reaches Redis (it waits for the running one), its
			// reply does not come back. A connection is open first, so that
			// the hold does not stop its handshake instead.
			must(t, via.Ping(bg).Err())
			p.Hold(redistest.ToClient)
			ctx, cancel := context.WithTimeout(bg, 500*time.Millisecond)
			_, err = bid.Obtain(ctx)
			cancel()
			p.Release(redistest.ToClient)
			if err == nil || !bid.Sent() {
				t.Fatalf("Obtain with its reply held: got %v (sent %v), want an I/O error after sending", err, bid.Sent())
			}
			mark := markOf(key, base.Add(time.Second))
			if got := hget(t, direct, mark, "token"); got != bid.Token() {
				t.Fatalf("mark token after the held reply: got %q, want the claim's", got)
			}
			// A later claim replaces the run the first one waited for; it
			// takes the lease once that run is released, below.
			later := make(chan error, 1)
			go func() {
				l, err := ld.Obtain(bg, claim(base.Add(2*time.Second), recs.Busy))
				if err == nil {
					err = l.Release(bg)
				}
				later <- err
			}()
			waitFor(t, 2*time.Second, func() bool { return get(t, direct, key+":next") != bid.Token() })
			_, err = bid.Obtain(bg)
			var ne *locker.NotObtainedError
			if !errors.Is(err, locker.ErrNotObtained) || !errors.As(err, &ne) {
				t.Errorf("retry after being replaced: got %v, want ErrNotObtained", err)
			}
			if err := bid.Withdraw(bg); err != nil {
				t.Fatalf("Withdraw: %v", err)
			}
			if got := hget(t, direct, mark, "end"); got != tc.want {
				t.Errorf("mark end: got %q, want %q", got, tc.want)
			}
			if err := running.Release(bg); err != nil {
				t.Fatalf("Release of the replaced run: %v", err)
			}
			if err := <-later; err != nil {
				t.Errorf("the later claim: %v", err)
			}
		})
	}
}

// TestReplaceWait: an overlap-replace claim that waits for the run it
// replaces gives up without a record when Redis does not let it know the
// outcome: takes that fail until its wait's bound leave the claim as it
// is, with an I/O error, to be retried as itself (which wins once the
// old run stopped); a withdrawal that fails after a later claim replaced
// it is an I/O error too, not ErrNotObtained (which says it is on record).
// A later claim that finds the lease freed before the waiting claim took
// it replaces the waiting one, which would otherwise replace the later
// run in turn with a lower fence, or, retried as itself once that run
// ended, run after it; a manual claim never takes a waiting claim's
// place.
func TestReplaceWait(t *testing.T) {
	t.Parallel()
	x := startProxied(t)
	direct, p, ld, lv := x.direct, x.p, x.ld, x.lv
	base := time.Now().Truncate(time.Second).Add(-time.Minute)
	// claim is a replace claim of slot base+i with a 500ms TTL, so that a
	// wait's bound (the old lease's TTL, two TTLs, NodeTimeout) is short.
	claim := func(key, meta string, i int) locker.Claim {
		c := slotClaim(key, meta, base.Add(time.Duration(i)*time.Second))
		c.Replace, c.NextKey, c.TTL = true, key+":next", 500*time.Millisecond
		return c
	}
	// read holds the arguments of the commands whose replies a locker
	// has read (through the proxy or not).
	var read sync.Map
	for _, c := range []*redis.Client{direct, x.via} {
		c.AddHook(redistest.AfterHook(func(cmd redis.Cmder) {
			if cmd.Err() == nil {
				for _, a := range cmd.Args() {
					read.Store(a, true)
				}
			}
		}))
	}
	// obtaining starts bid's Obtain and returns its result's channel once
	// the claim is in Redis (it waits for the running run) and its reply
	// has been read, so that cutting the traffic cuts only the takes that
	// follow, never the claim's own reply.
	obtaining := func(t *testing.T, bid *locker.Bid, key string) chan error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			l, err := bid.Obtain(bg)
			if err == nil {
				err = l.Release(bg)
			}
			done <- err
		}()
		waitFor(t, 2*time.Second, func() bool {
			_, ok := read.Load(bid.Token())
			return ok && get(t, direct, key+":next") == bid.Token()
		})
		return done
	}
	// waiting starts a replace claim of slot base+1 that waits for a
	// running claim of base, and returns them, with the channel of the
	// waiting claim's Obtain, once that claim is in Redis.
	waiting := func(t *testing.T, key, meta string) (*locker.Lease, *locker.Bid, chan error) {
		t.Helper()
		running := mustObtain(t, ld, claim(key, meta, 0))
		bid, err := lv.Bid(claim(key, meta, 1))
		if err != nil {
			t.Fatal(err)
		}
		return running, bid, obtaining(t, bid, key)
	}

	t.Run("takes fail until the bound", func(t *testing.T) {
		key, meta := keys(t)
		running, bid, done := waiting(t, key, meta)
		p.Block(true)
		err := <-done
		p.Block(false)
		if err == nil || errors.Is(err, locker.ErrNotObtained) {
			t.Fatalf("Obtain with every take cut off: got %v, want an I/O error", err)
		}
		mark := markOf(key, base.Add(time.Second))
		if got := hgetall(t, direct, mark); got["token"] != bid.Token() || got["end"] != "" {
			t.Errorf("mark after the failed wait: got %v, want the claim's, running", got)
		}
		// Retried as itself once the old run's lease is gone (released,
		// or expired: a replaced run's renewals stop after one TTL), it
		// takes the lease.
		if err := running.Release(bg); err != nil && !errors.Is(err, locker.ErrLeaseExpired) {
			t.Fatal(err)
		}
		lease, err := bid.Obtain(bg)
		if err != nil {
			t.Fatalf("retry as itself after the old run stopped: %v", err)
		}
		if lease.Fence() != 3 {
			t.Errorf("fence: got %d, want 3 (the claim waited with 2; its take took a new one)", lease.Fence())
		}
		must(t, lease.Release(bg))
	})

	t.Run("a later claim takes the lease freed between takes", func(t *testing.T) {
		key, meta := keys(t)
		running, _, done := waiting(t, key, meta)
		// The waiting claim's takes are cut off while the old run stops
		// and the next slot's claim comes, which finds the lease free.
		p.Block(true)
		must(t, running.Release(bg))
		later := mustObtain(t, ld, claim(key, meta, 2))
		p.Block(false)
		if err := <-done; !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("the waiting claim of the earlier slot: got %v, want ErrNotObtained (replaced)", err)
		}
		if got := hget(t, direct, markOf(key, base.Add(time.Second)), "end"); got != recs.Busy {
			t.Errorf("its mark's end: got %q, want %q", got, recs.Busy)
		}
		select {
		case <-later.Done():
			t.Errorf("the later run was told to stop: %v", context.Cause(later.Ctx()))
		default:
		}
		if got := later.Fence(); got != 3 {
			t.Errorf("the later run's fence: got %d, want 3", got)
		}
	})

	t.Run("retried after a later claim took the lease and ended", func(t *testing.T) {
		key, meta := keys(t)
		running, bid, done := waiting(t, key, meta)
		// The waiting claim's takes are cut off until their bound, while
		// the old run stops and the next slot's claim runs and ends.
		p.Block(true)
		must(t, running.Release(bg))
		must(t, mustObtain(t, ld, claim(key, meta, 2)).Release(bg))
		err := <-done
		p.Block(false)
		if err == nil || errors.Is(err, locker.ErrNotObtained) {
			t.Fatalf("Obtain with every take cut off: got %v, want an I/O error", err)
		}
		// Retried as itself, it finds the lease free: before, it took it
		// and ran the earlier slot after the later one.
		if _, err := bid.Obtain(bg); !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("the waiting claim retried after the later run: got %v, want ErrNotObtained (replaced)", err)
		}
		if got := hget(t, direct, markOf(key, base.Add(time.Second)), "end"); got != recs.Busy {
			t.Errorf("its mark's end: got %q, want %q", got, recs.Busy)
		}
	})

	t.Run("a manual claim does not take a waiting claim's place", func(t *testing.T) {
		key, meta := keys(t)
		running, bid, done := waiting(t, key, meta)
		manual := locker.Claim{Key: key, MetaKey: meta, TTL: 500 * time.Millisecond,
			MarkKey: key + ":manual:1", MarkTTL: time.Minute, Retention: time.Hour, Running: "running",
			Replace: true, NextKey: key + ":next", Records: recs}
		if err := tryObtain(ld, manual); !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("manual claim while a slot's claim waits: got %v, want ErrNotObtained", err)
		}
		if got := hget(t, direct, manual.MarkKey, "end"); got != recs.Busy {
			t.Errorf("manual mark's end: got %q, want %q", got, recs.Busy)
		}
		if got := get(t, direct, key+":next"); got != bid.Token() {
			t.Errorf("successor: got %q, want the waiting claim's", got)
		}
		must(t, running.Release(bg))
		if err := <-done; err != nil {
			t.Errorf("the waiting claim once the old run stopped: got %v, want its lease", err)
		}
	})

	t.Run("withdrawal fails after being replaced", func(t *testing.T) {
		key, meta := keys(t)
		running, _, done := waiting(t, key, meta)
		// The withdrawal (release.lua) fails on a mark that is not a hash;
		// take.lua finds the claim replaced before it reads the mark.
		must(t, direct.Set(bg, markOf(key, base.Add(time.Second)), "not a hash", time.Minute).Err())
		lb, err := ld.Bid(claim(key, meta, 2))
		if err != nil {
			t.Fatal(err)
		}
		later := obtaining(t, lb, key)
		if err := <-done; err == nil || errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("Obtain replaced, its withdrawal failing: got %v, want an I/O error", err)
		}
		must(t, running.Release(bg))
		if err := <-later; err != nil {
			t.Errorf("the later claim: %v", err)
		}
	})
}

// TestReplaceRetryFence: on one node, a replace claim that runs after
// another takes a greater fence, when a claim whose reply was lost is
// retried as itself (found by review).
//   - Successor waiting: B1's claim of s won; B2's of s+1 started to wait
//     with 2; B1's retry takes 3 (a greater number was taken since its
//     own 1). B2, which runs after B1, ran with 2 at f49e143, which
//     renumbered the retry, before take.lua took a new number on one
//     node too.
//   - Manual run after expiry: B1's lease expired, and a manual run took
//     2 and ended; B1's retry waits (its successor key is gone) and takes
//     the lease: before, with its first number, 1.
func TestReplaceRetryFence(t *testing.T) {
	t.Parallel()
	for _, manual := range []bool{false, true} {
		name := "successor waiting"
		if manual {
			name = "manual run after expiry"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			x := startProxied(t)
			direct, p, ld, lv := x.direct, x.p, x.ld, x.lv
			key, meta := keys(t)
			slot := time.Now().Truncate(time.Second).Add(-time.Minute)
			replace := func(key, meta string, s time.Time) locker.Claim {
				c := slotClaim(key, meta, s)
				c.Unwatched, c.TTL, c.Replace, c.NextKey = true, 10*time.Second, true, key+":next"
				if manual {
					c.TTL = 500 * time.Millisecond
				}
				return c
			}
			for _, m := range []string{meta, meta + "-warm"} {
				must(t, direct.HSet(bg, m, "hw", unix(slot.Add(-time.Second)), "first", unix(slot.Add(-time.Hour))).Err())
			}
			// Connected through the proxy before its replies are held.
			must(t, mustObtain(t, lv, replace(key+"-warm", meta+"-warm", slot)).Release(bg))

			b1, err := lv.Bid(replace(key, meta, slot))
			if err != nil {
				t.Fatal(err)
			}
			p.Hold(redistest.ToClient)
			if _, err := b1.Obtain(bg); err == nil {
				t.Fatal("B1's claim with its reply held: got a lease, want a timeout")
			}
			waitFor(t, 5*time.Second, func() bool { return hget(t, direct, markOf(key, slot), "token") == b1.Token() })
			p.Release(redistest.ToClient)

			var other *locker.Lease // the run that starts between B1's attempts
			done := make(chan obtained, 1)
			if manual {
				waitFor(t, 5*time.Second, func() bool { return get(t, direct, key) == "" })
				m := locker.Claim{Key: key, MetaKey: meta, TTL: 10 * time.Second, MarkKey: key + ":manual:1", MarkTTL: time.Minute,
					Retention: time.Hour, Running: "running", Records: recs, Replace: true, NextKey: key + ":next", Unwatched: true}
				other = mustObtain(t, ld, m)
				must(t, other.Finish(bg, "done:ok"))
			} else {
				b2, err := ld.Bid(replace(key, meta, slot.Add(time.Second)))
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					lease, err := b2.Obtain(bg)
					done <- obtained{lease, err}
				}()
				waitFor(t, 5*time.Second, func() bool { return get(t, direct, key+":next") == b2.Token() })
			}
			again, err := b1.Obtain(bg)
			if err != nil {
				t.Fatalf("B1 retried as itself: %v", err)
			}
			must(t, again.Release(bg))
			if manual {
				if again.Fence() <= other.Fence() {
					t.Errorf("B1's retry, run after the manual run: fence %d, want above its %d", again.Fence(), other.Fence())
				}
				return
			}
			b2 := awaitObtained(t, done, "B2's claim")
			if b2.Fence() <= again.Fence() {
				t.Errorf("B2, run after B1's retry: fence %d, want above B1's %d", b2.Fence(), again.Fence())
			}
			must(t, b2.Release(bg))
		})
	}
}

// TestServerClock: the offset to a local server is about zero, and it is
// server minus local: a caller whose clock leads by 10s sees -10s.
func TestServerClock(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 3, redistest.Options{})
	single := mustNew(t, clients[0], locker.Options{})
	q := newQuorum(t, clients, locker.Options{NodeTimeout: time.Second})
	ahead := func() time.Time { return time.Now().Add(10 * time.Second) }
	const slack = 100 * time.Millisecond // plus half the round trip
	for _, tc := range []struct {
		name      string
		l         *locker.Locker
		now       func() time.Time
		want      time.Duration
		wantNodes int
	}{
		{"single", single, time.Now, 0, 1},
		{"single, clock ahead", single, ahead, -10 * time.Second, 1},
		{"quorum", q, time.Now, 0, 3},
		{"quorum, clock ahead", q, ahead, -10 * time.Second, 3},
	} {
		sc, err := tc.l.ServerClock(bg, tc.now)
		if err != nil {
			t.Fatalf("%s: ServerClock: %v", tc.name, err)
		}
		if d, tol := sc.Offset-tc.want, slack+sc.RTT/2; d < -tol || d > tol {
			t.Errorf("%s: Offset %v, want %v ± %v", tc.name, sc.Offset, tc.want, tol)
		}
		if sc.Nodes != tc.wantNodes || sc.RTT <= 0 || sc.RTT > time.Second {
			t.Errorf("%s: got Nodes %d RTT %v, want %d nodes and a short RTT", tc.name, sc.Nodes, sc.RTT, tc.wantNodes)
		}
	}

	kill(t, servers[2])
	sc, err := q.ServerClock(bg, time.Now)
	if err != nil || sc.Nodes != 2 {
		t.Errorf("one of 3 killed: got %+v, %v; want 2 nodes, no error", sc, err)
	}
	kill(t, servers[1])
	if _, err := q.ServerClock(bg, time.Now); !errors.Is(err, locker.ErrNoQuorum) {
		t.Errorf("two of 3 killed: got %v, want ErrNoQuorum", err)
	}
	kill(t, servers[0])
	if _, err := single.ServerClock(bg, time.Now); err == nil {
		t.Errorf("single node killed: got no error")
	}
}

// TestEach: a read of state beside the leases reaches every node and needs
// a majority of answers.
func TestEach(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 3, redistest.Options{})
	key, _ := keys(t)
	for i, c := range clients {
		must(t, c.Set(bg, key, "v"+string(rune('0'+i)), time.Minute).Err())
	}
	read := func(ctx context.Context, c locker.Client) (string, error) {
		cmd := redis.NewStringCmd(ctx, "get", key)
		err := c.Process(ctx, cmd)
		return cmd.Val(), err
	}
	single := mustNew(t, clients[0], locker.Options{})
	q := newQuorum(t, clients, locker.Options{NodeTimeout: time.Second})

	got, err := locker.Each(bg, single, read)
	if err != nil || len(got) != 1 || got[0] != "v0" {
		t.Errorf("single: got %q, %v; want [v0]", got, err)
	}
	got, err = locker.Each(bg, q, read)
	if err != nil || len(got) != 3 || got[0] != "v0" || got[1] != "v1" || got[2] != "v2" {
		t.Errorf("quorum: got %q, %v; want [v0 v1 v2] in node order", got, err)
	}
	kill(t, servers[1])
	got, err = locker.Each(bg, q, read)
	if err != nil || len(got) != 2 || got[0] != "v0" || got[1] != "v2" {
		t.Errorf("one of 3 killed: got %q, %v; want [v0 v2]", got, err)
	}
	kill(t, servers[2])
	start := time.Now()
	if got, err = locker.Each(bg, q, read); !errors.Is(err, locker.ErrNoQuorum) {
		t.Errorf("two of 3 killed: got %q, %v; want ErrNoQuorum", got, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("two of 3 killed: took %v, want it bounded by the node timeout", took)
	}
}

// TestEndRetries: Release and Finish retry I/O errors, with the same token,
// while the lease (or its running mark) can still hold the run, so that a
// short outage does not lose the outcome or leave the key taken; past
// that, they give up with the I/O error.
func TestEndRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		finish bool
		ttl    time.Duration
		pause  time.Duration
		wantOK bool
	}{
		{"Release through a short pause", false, 5 * time.Second, 500 * time.Millisecond, true},
		{"Finish through a short pause", true, 5 * time.Second, 500 * time.Millisecond, true},
		{"Release past the lease", false, 400 * time.Millisecond, 2 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := redistest.Start(t, redistest.Options{})
			c := newClient(t, s)
			l := mustNew(t, c, locker.Options{NodeTimeout: 100 * time.Millisecond})
			key, meta := keys(t)
			cl := slotClaim(key, meta, time.Now().Truncate(time.Second))
			cl.TTL, cl.MarkTTL = tc.ttl, tc.ttl
			cl.HistoryKey, cl.HistoryLen, cl.HistoryTTL = key+":history", 10, time.Hour
			lease := mustObtain(t, l, cl)

			must(t, s.Pause())
			var once sync.Once
			resume := func() {
				once.Do(func() {
					if err := s.Resume(); err != nil {
						t.Error(err)
					}
				})
			}
			t.Cleanup(resume)
			timer := time.AfterFunc(tc.pause, resume)
			t.Cleanup(func() { timer.Stop() })
			start := time.Now()
			var err error
			if tc.finish {
				err = lease.Finish(bg, "done:ok")
			} else {
				err = lease.Release(bg)
			}
			took := time.Since(start)
			if !tc.wantOK {
				if err == nil {
					t.Fatalf("ending a lease while Redis is paused past it: got nil, want the I/O error")
				}
				if took > tc.ttl+time.Second {
					t.Errorf("gave up after %v, want within about the lease's TTL %v", took, tc.ttl)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v after %v, want success once Redis is back after %v", err, took, tc.pause)
			}
			if took < tc.pause-50*time.Millisecond {
				t.Errorf("returned after %v, before Redis was resumed at %v", took, tc.pause)
			}
			if exists(t, c, key) {
				t.Errorf("lease key after the retried end: %q", get(t, c, key))
			}
			if tc.finish {
				if got := hget(t, c, cl.MarkKey, "end"); got != "done:ok" {
					t.Errorf("mark end: got %q, want done:ok", got)
				}
				// Attempts that timed out may have landed too: the record is
				// still written once.
				if got := lrange(t, c, cl.HistoryKey); len(got) != 1 {
					t.Errorf("history: got %q, want the record once", got)
				}
			}
		})
	}
}

// TestDueOfHeldReply: a claim sent ahead of its slot whose reply is held
// 400ms on the way back still gets Lease.Due at the slot, from the node's
// earlier reply that was not held, and never before the slot; a locker
// with no earlier reply counts the held one's wait from when it arrived,
// 400ms late (the fallback).
func TestDueOfHeldReply(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, s)
	c := redis.NewClient(&redis.Options{
		Addr: p.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	opts := locker.Options{NodeTimeout: 2 * time.Second}
	l := mustNew(t, c, opts)
	const held = 400 * time.Millisecond
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	due := time.Now().Add(5 * time.Second).Truncate(time.Millisecond) // as the claim sends it
	claim := func(name string) locker.Claim {
		key, meta := keys(t)
		cl := slotClaim(key+name, meta+name, slot)
		cl.NotBefore, cl.Due = time.Now().Add(-time.Second), due
		return cl
	}

	first := mustObtain(t, l, claim("first"))
	if first.Due().Before(due) {
		t.Fatalf("first Due: %v before Claim.Due", due.Sub(first.Due()))
	}
	p.Delay(redistest.ToClient, held)
	start := time.Now()
	second := mustObtain(t, l, claim("second"))
	if took := time.Since(start); took < held {
		t.Fatalf("the held claim took %v, want at least %v: the proxy did not hold it", took, held)
	}
	if got := second.Due().Sub(first.Due()); got < 0 || got > 10*time.Millisecond {
		t.Errorf("held reply's Due: got %v after the first's, want 0 to 10ms (from the first's sample)", got)
	}

	fresh := mustNew(t, c, opts)
	third := mustObtain(t, fresh, claim("third"))
	p.Delay(redistest.ToClient, 0) // the releases need not wait
	if got := third.Due().Sub(due); got < held {
		t.Errorf("held reply's Due with no earlier sample: got %v after Claim.Due, want at least %v", got, held)
	}
}
