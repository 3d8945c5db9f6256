package locker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// TestRecordSkipRing: past its mark's window, with a later slot decided, a
// skip is still told right by the job's ring of decided slots: written
// for a slot that no claim or skip decided, refused for one that was
// decided (its mark gone), and late (nothing written) where the ring does
// not speak: below its span, before its base, or after a claim that
// raised the high-water without the ring (an older replica's). On
// redis-server and on the embedded server that `redcron run` starts when
// no Redis is configured (its Lua and bit commands are gopher-lua's and
// miniredis's).
func TestRecordSkipRing(t *testing.T) {
	t.Parallel()
	onBothServers(t, recordSkipRing)
}

// onBothServers runs test, in parallel subtests, against a redis-server
// and against the embedded server, each started for it.
func onBothServers(t *testing.T, test func(t *testing.T, addr string)) {
	t.Helper()
	t.Run("redis-server", func(t *testing.T) {
		t.Parallel()
		test(t, redistest.Start(t, redistest.Options{}).Addr())
	})
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		e, err := embedredis.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		test(t, e.Addr())
	})
}

func recordSkipRing(t *testing.T, addr string) {
	c := clientAt(t, addr)
	l := mustNew(t, c, locker.Options{})
	span := int64(locker.RingSpan / time.Second)
	// base is a whole ring, so that base+i is at bit i; an hour of rings
	// back, so that every slot here is in the past.
	base := (time.Now().Unix()/span - 3) * span
	at := func(i int64) time.Time { return time.Unix(base+i, 0) }

	type step struct {
		slot int64
		how  string // "claim" (with the ring), "old" (a claim without it), "paused", "reordered",
		// "skip-old" (a skip within its window, without the ring or history),
		// "history-old" (a record in the history only, as an older replica's
		// skip under the high-water leaves once its mark expired), "lose"
		// (the ring key deleted, as an eviction would)
		unmark bool // delete its mark afterwards, as its expiry would
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		skip    int64
		want    error // nil: recorded
		decided int64 // ErrLate: the Decided slot
	}{
		{"undecided between decided slots", []step{{1, "claim", true}, {3, "claim", true}}, 2, nil, 0},
		{"decided, its mark gone", []step{{1, "claim", true}, {2, "claim", false}}, 1, locker.ErrSlotClaimed, 0},
		{"skipped as paused, its mark gone", []step{{1, "claim", true}, {2, "paused", true}, {3, "claim", false}}, 2, locker.ErrSlotClaimed, 0},
		{"recorded by a reordered claim, its mark gone", []step{{1, "claim", true}, {3, "claim", false}, {2, "reordered", true}}, 2, locker.ErrSlotClaimed, 0},
		// Its bit was set by base+5, a ring earlier: passing it over clears it.
		{"passed over across the ring's end", []step{{5, "claim", true}, {4000, "claim", true}, {span + 10, "claim", false}}, span + 5, nil, 0},
		{"decided before a wrap, its mark gone", []step{{5, "claim", true}, {4000, "claim", true}, {span + 10, "claim", false}}, 4000, locker.ErrSlotClaimed, 0},
		{"passed over at the ring's end", []step{{5, "claim", true}, {4000, "claim", true}, {span + 10, "claim", false}}, 4050, nil, 0},
		// Its bit was set by base+10, a ring earlier.
		{"passed over within the ring", []step{{10, "claim", true}, {4000, "claim", true}, {span + 2, "claim", true}, {span + 50, "claim", false}}, span + 10, nil, 0},
		{"passed over a whole ring: within the span", []step{{1, "claim", true}, {span + 4, "claim", false}}, 5, nil, 0},
		{"passed over a whole ring: below the span", []step{{1, "claim", true}, {span + 4, "claim", false}}, 2, locker.ErrLate, 4},
		{"before the ring's base", []step{{10, "old", true}, {20, "claim", false}}, 15, locker.ErrLate, 19},
		{"the high-water raised without the ring", []step{{1, "claim", true}, {5, "old", true}, {6, "claim", false}}, 5, locker.ErrLate, 5},
		{"a skip under the high-water without the ring", []step{{1, "claim", true}, {3, "claim", false}, {2, "skip-old", true}}, 2, locker.ErrLate, 3},
		{"a record under the high-water in the history only", []step{{1, "claim", true}, {3, "claim", false}, {2, "history-old", false}}, 2, locker.ErrSlotClaimed, 0},
		{"the ring lost", []step{{1, "claim", true}, {3, "claim", false}, {0, "lose", false}}, 2, locker.ErrLate, 3},
		{"the ring lost, then a later claim", []step{{1, "claim", true}, {3, "claim", true}, {0, "lose", false}, {5, "claim", false}}, 2, locker.ErrLate, 4},
		{"the high-water raised without the ring, then a new ring", []step{{1, "claim", true}, {5, "old", true}, {6, "claim", true}, {8, "claim", false}}, 7, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			ring, pause := key+":ring", key+":paused"
			history := key + ":history"
			for _, st := range tc.steps {
				switch st.how {
				case "skip-old":
					sk := locker.Skip{MarkKey: markOf(key, at(st.slot)), MetaKey: meta, Slot: at(st.slot), Record: "skipped:old",
						Retention: time.Hour, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Minute)}
					if err := l.RecordSkip(bg, sk); err != nil {
						t.Fatalf("step %+v: %v", st, err)
					}
					must(t, c.Del(bg, sk.MarkKey).Err())
					continue
				case "history-old":
					must(t, c.ZAdd(bg, history, redis.Z{Score: float64(at(st.slot).UnixMilli()), Member: "skipped:old"}).Err())
					continue
				case "lose":
					must(t, c.Del(bg, ring).Err())
					continue
				}
				cl := slotClaim(key, meta, at(st.slot))
				cl.RingKey = ring
				switch st.how {
				case "old":
					cl.RingKey = ""
				case "paused":
					must(t, c.Set(bg, pause, "1", 0).Err())
					cl.PauseKey = pause
				case "reordered":
					cl.MarkFloor = 1000 * time.Hour // within it, a slot under the high-water is recorded late
				}
				lease, err := l.Obtain(bg, cl)
				switch {
				case st.how == "paused" && errors.Is(err, locker.ErrPaused):
					must(t, c.Del(bg, pause).Err())
				case st.how == "reordered" && errors.Is(err, locker.ErrLate):
				case err != nil:
					t.Fatalf("step %+v: %v", st, err)
				default:
					must(t, lease.Release(bg))
				}
				if st.unmark {
					must(t, c.Del(bg, cl.MarkKey).Err())
				}
			}
			slot := at(tc.skip)
			sk := locker.Skip{MarkKey: markOf(key, slot), MetaKey: meta, RingKey: ring, Slot: slot, Record: "skipped:outage",
				Retention: time.Hour, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(-time.Second),
				HistoryKey: history, HistoryLen: 10, HistoryTTL: 100 * time.Hour}
			err := l.RecordSkip(bg, sk)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("RecordSkip of base+%d: got %v, want it recorded", tc.skip, err)
				}
				if got := hget(t, c, sk.MarkKey, "end"); got != sk.Record {
					t.Errorf("mark end: got %q, want %q", got, sk.Record)
				}
				// Recorded once: the ring now shows it decided.
				must(t, c.Del(bg, sk.MarkKey).Err())
				if err := l.RecordSkip(bg, sk); !errors.Is(err, locker.ErrSlotClaimed) {
					t.Errorf("RecordSkip again, its mark gone: got %v, want ErrSlotClaimed", err)
				}
				return
			}
			var ne *locker.NotObtainedError
			if !errors.Is(err, tc.want) || !errors.As(err, &ne) {
				t.Fatalf("RecordSkip of base+%d: got %v, want %v", tc.skip, err, tc.want)
			}
			if tc.want == locker.ErrLate && !ne.Decided.Equal(at(tc.decided)) {
				t.Errorf("Decided: got base%+d, want base+%d", ne.Decided.Unix()-base, tc.decided)
			}
			if exists(t, c, sk.MarkKey) {
				t.Errorf("a refused skip wrote the mark: %q", hget(t, c, sk.MarkKey, "end"))
			}
		})
	}
}
