package locker_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// TestMutualExclusion: 50 goroutines over 3 clients contend for one key for
// 5 s; no two ever hold it at once and fences strictly increase in the order
// the holders entered.
func TestMutualExclusion(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	key, meta := keys(t)
	var lockers [3]*locker.Locker
	for i := range lockers {
		// A wide node timeout: a stall of the busy machine is not what
		// this test is about.
		lockers[i] = mustNew(t, newClient(t, s), locker.Options{NodeTimeout: 2 * time.Second})
	}

	var (
		holders  atomic.Int32
		overlaps atomic.Int32
		mu       sync.Mutex
		fences   []int64
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(5 * time.Second)
	for g := range 50 {
		wg.Go(func() {
			l := lockers[g%3]
			// Half the goroutines use watched leases, half unwatched.
			c := locker.Claim{Key: key, MetaKey: meta, TTL: 2 * time.Second, Unwatched: g%2 == 0}
			for time.Now().Before(stop) {
				lease, err := l.Obtain(bg, c)
				if errors.Is(err, locker.ErrNotObtained) {
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					continue
				}
				if err != nil {
					t.Errorf("Obtain: %v", err)
					return
				}
				if holders.Add(1) != 1 {
					overlaps.Add(1)
				}
				mu.Lock()
				fences = append(fences, lease.Fence())
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				holders.Add(-1)
				if err := lease.Release(bg); err != nil {
					t.Errorf("Release: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("got %d overlapping holders, want 0", n)
	}
	if len(fences) < 100 {
		t.Errorf("got %d acquisitions in 5s, want at least 100", len(fences))
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence %d at acquisition %d after %d: want strictly increasing", fences[i], i, fences[i-1])
		}
	}
	t.Logf("%d acquisitions", len(fences))
}

// TestWatchedOutlivesTTL: the watchdog keeps a lease, and its running mark,
// for 5 x TTL.
func TestWatchedOutlivesTTL(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	key, meta := keys(t)
	const ttl = 300 * time.Millisecond
	l := mustNew(t, c, locker.Options{})
	lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
	first := lease.Deadline()

	time.Sleep(5 * ttl)
	if err := lease.Ctx().Err(); err != nil {
		t.Fatalf("lease ended after 5 x TTL: %v (cause %v)", err, context.Cause(lease.Ctx()))
	}
	if got := get(t, c, key); got != lease.Token() {
		t.Fatalf("key holds %q, want the token %q", got, lease.Token())
	}
	if !lease.Deadline().After(first.Add(3 * ttl)) {
		t.Errorf("deadline %v not moved well past the first %v", lease.Deadline(), first)
	}
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := context.Cause(lease.Ctx()); got != locker.ErrReleased {
		t.Errorf("cause after Release: got %v, want %v", got, locker.ErrReleased)
	}
	if exists(t, c, key) {
		t.Errorf("key still exists after Release")
	}
}

// TestUnwatchedExpires: without a watchdog the key is gone after TTL, and
// Renew then reports ErrLeaseExpired and ends the lease.
func TestUnwatchedExpires(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	key, meta := keys(t)
	const ttl = 300 * time.Millisecond
	l := mustNew(t, c, locker.Options{})
	lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl, Unwatched: true})

	time.Sleep(ttl / 2)
	if err := lease.Renew(bg); err != nil {
		t.Fatalf("Renew within TTL: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if exists(t, c, key) {
		t.Fatalf("key still exists %v after the last renewal, TTL %v", ttl+100*time.Millisecond, ttl)
	}
	if err := lease.Ctx().Err(); err != nil {
		t.Fatalf("unwatched lease ended before Renew told it: %v", context.Cause(lease.Ctx()))
	}
	err := lease.Renew(bg)
	if !errors.Is(err, locker.ErrLeaseExpired) || !errors.Is(err, locker.ErrLeaseLost) {
		t.Fatalf("Renew after expiry: got %v, want ErrLeaseExpired and ErrLeaseLost", err)
	}
	if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
		t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
	}
}

// TestLoss: a key deleted, overwritten or expired from outside ends the
// lease within TTL/3 plus a margin (well before its local deadline), with
// cause ErrLeaseLost.
func TestLoss(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	// TTL/3 + margin must stay well below the deadline (TTL - drift), so
	// that the renewal's finding, not the deadline, is what is measured.
	const ttl = 1200 * time.Millisecond
	const margin = 300 * time.Millisecond
	l := mustNew(t, c, locker.Options{})
	for _, tc := range []struct {
		name  string
		fault func(key string) error
		want  error
	}{
		{"deleted", func(key string) error { return c.Del(bg, key).Err() }, locker.ErrLeaseExpired},
		{"overwritten", func(key string) error { return c.Set(bg, key, "someone-else", time.Minute).Err() }, locker.ErrLeaseTaken},
		{"expired", func(key string) error { return c.PExpire(bg, key, time.Millisecond).Err() }, locker.ErrLeaseExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, meta := keys(t)
			lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
			if err := tc.fault(key); err != nil {
				t.Fatal(err)
			}
			if took := waitDone(t, lease, 3*ttl); took > ttl/3+margin {
				t.Errorf("lease lost after %v, want within TTL/3 + %v = %v", took, margin, ttl/3+margin)
			}
			if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
				t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
			}
			if err := lease.Renew(bg); !errors.Is(err, locker.ErrLeaseLost) {
				t.Errorf("Renew after loss: got %v, want ErrLeaseLost", err)
			}
			if err := lease.Release(bg); !errors.Is(err, tc.want) {
				t.Errorf("Release after loss: got %v, want %v", err, tc.want)
			}
			if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
				t.Errorf("cause after Release: got %v, want %v kept", got, locker.ErrLeaseLost)
			}
		})
	}
}

// TestPausedRedis: Redis stopped (SIGSTOP) past the local deadline. The
// lease is lost no later than its deadline (plus scheduling slack), even
// though a renewal call is blocked, and after SIGCONT nothing revives it.
func TestPausedRedis(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	key, meta := keys(t)
	const ttl = 300 * time.Millisecond
	// A node timeout far beyond the TTL: only the deadline can end the wait.
	l := mustNew(t, c, locker.Options{NodeTimeout: 5 * time.Second})
	lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
	time.Sleep(ttl / 2) // let one renewal succeed first

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := s.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(resume)
	waitDone(t, lease, 3*ttl)
	lostAt := time.Now()
	deadline := lease.Deadline()
	if late := lostAt.Sub(deadline); late > 250*time.Millisecond {
		t.Errorf("lease lost %v after its deadline, want at most 250ms", late)
	}
	if early := deadline.Sub(lostAt); early > 50*time.Millisecond {
		t.Errorf("lease lost %v before its deadline while only paused", early)
	}
	if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
		t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
	}

	// Stay paused past the key's expiry in Redis, then let Redis run any
	// request still queued.
	time.Sleep(ttl)
	resume()
	time.Sleep(ttl)
	if exists(t, c, key) {
		t.Errorf("key exists after resume (pttl %v): a late renewal revived it", pttl(t, c, key))
	}
	if err := lease.Renew(bg); !errors.Is(err, locker.ErrLeaseLost) {
		t.Errorf("Renew after loss: got %v, want ErrLeaseLost", err)
	}
	if exists(t, c, key) {
		t.Errorf("key exists after Renew on a lost lease")
	}
	if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
		t.Errorf("cause after resume: got %v, want %v", got, locker.ErrLeaseLost)
	}
}

// TestEndAfterExpiryOrTakeover: Release and Finish tell a gone key from a
// taken one, and never touch the new holder's key.
func TestEndAfterExpiryOrTakeover(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	const ttl = 100 * time.Millisecond
	end := map[string]func(*locker.Lease) error{
		"Release": func(l *locker.Lease) error { return l.Release(bg) },
		"Finish":  func(l *locker.Lease) error { return l.Finish(bg, "done:late") },
	}
	for _, tc := range []struct {
		name     string
		takeover bool
		want     error
	}{
		{"expired", false, locker.ErrLeaseExpired},
		{"taken", true, locker.ErrLeaseTaken},
	} {
		for op, fn := range end {
			t.Run(op+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				key, meta := keys(t)
				old := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl, Retention: time.Minute, Unwatched: true})
				time.Sleep(ttl + 50*time.Millisecond)
				var holder *locker.Lease
				if tc.takeover {
					holder = mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Minute, Unwatched: true})
				}
				err := fn(old)
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: got %v, want %v", op, err, tc.want)
				}
				var fe *locker.FinishError
				if op == "Finish" && (!errors.As(err, &fe) || fe.Recorded) {
					t.Errorf("Finish: got %v, want a FinishError with Recorded false", err)
				}
				if got := context.Cause(old.Ctx()); got != locker.ErrReleased {
					t.Errorf("cause: got %v, want %v", got, locker.ErrReleased)
				}
				if holder == nil {
					if exists(t, c, key) {
						t.Errorf("%s after expiry created the key (%q)", op, get(t, c, key))
					}
					return
				}
				if got := get(t, c, key); got != holder.Token() {
					t.Errorf("new holder's key: got %q, want its token %q", got, holder.Token())
				}
				if d := pttl(t, c, key); d < 50*time.Second {
					t.Errorf("new holder's key TTL: got %v, want about 1m", d)
				}
			})
		}
	}
}

// TestFinish: the final record is written into the mark (field "end") for
// the retention, the lease key goes, and history stays bounded; without a
// mark the lease key itself keeps the record.
func TestFinish(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})

	t.Run("mark and history", func(t *testing.T) {
		key, meta := keys(t)
		hist := key + ":history"
		for i := range 5 {
			mark := key + ":slot:" + string(rune('a'+i))
			running := "running:" + strconv.Itoa(i)
			lease := mustObtain(t, l, locker.Claim{
				Key: key, MetaKey: meta, TTL: time.Second,
				MarkKey: mark, MarkTTL: time.Minute, Retention: 10 * time.Minute, Running: running,
				HistoryKey: hist, HistoryLen: 3, HistoryTTL: time.Hour,
			})
			if lease.Fence() != int64(i+1) {
				t.Errorf("fence: got %d, want %d", lease.Fence(), i+1)
			}
			runningMark(t, c, mark, lease, running)
			if d := pttl(t, c, mark); d < 50*time.Second || d > time.Minute {
				t.Errorf("running mark TTL: got %v, want about the 1m MarkTTL", d)
			}
			record := "done:" + string(rune('a'+i))
			if err := lease.Finish(bg, record); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if got := hget(t, c, mark, "end"); got != record {
				t.Errorf("mark end: got %q, want %q", got, record)
			}
			if got := hget(t, c, mark, "token"); got != lease.Token() {
				t.Errorf("mark token after Finish: got %q, want the run's %q", got, lease.Token())
			}
			if d := pttl(t, c, mark); d < 9*time.Minute {
				t.Errorf("mark TTL: got %v, want the 10m retention", d)
			}
			if exists(t, c, key) {
				t.Errorf("lease key still exists after Finish")
			}
			if got := context.Cause(lease.Ctx()); got != locker.ErrReleased {
				t.Errorf("cause after Finish: got %v, want %v", got, locker.ErrReleased)
			}
		}
		got := lrange(t, c, hist)
		if want := []string{"done:e", "done:d", "done:c"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("history: got %q, want %q", got, want)
		}
		if d := pttl(t, c, hist); d <= 0 || d > time.Hour {
			t.Errorf("history TTL: got %v, want (0, 1h]", d)
		}
	})

	t.Run("no mark keeps the key", func(t *testing.T) {
		key, meta := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, Retention: time.Minute})
		if err := lease.Finish(bg, "done:ok"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := get(t, c, key); got != "done:ok" {
			t.Errorf("key: got %q, want the record", got)
		}
		if d := pttl(t, c, key); d < 50*time.Second {
			t.Errorf("key TTL: got %v, want about 1m", d)
		}
		if err := tryObtain(l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second}); !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("Obtain after Finish: got %v, want ErrNotObtained", err)
		}
	})

	t.Run("repeated finish is idempotent", func(t *testing.T) {
		key, meta := keys(t)
		hist := key + ":history"
		for _, tc := range []struct {
			name string
			mark string
		}{{"mark", key + ":slot"}, {"no mark", ""}} {
			claim := locker.Claim{Key: key + ":" + tc.name, MetaKey: meta, TTL: time.Second, Retention: time.Minute,
				MarkKey: tc.mark, HistoryKey: hist, HistoryLen: 10, HistoryTTL: time.Hour}
			if tc.mark != "" {
				claim.MarkTTL, claim.Running = time.Minute, "running"
			}
			lease := mustObtain(t, l, claim)
			record := "done:" + tc.name
			for i := range 2 {
				if err := lease.Finish(bg, record); err != nil {
					t.Fatalf("%s: Finish #%d: got %v, want nil", tc.name, i+1, err)
				}
			}
			if tc.mark != "" {
				if got := hget(t, c, tc.mark, "end"); got != record {
					t.Errorf("%s: mark end: got %q, want %q", tc.name, got, record)
				}
			} else if got := get(t, c, claim.Key); got != record {
				t.Errorf("%s: key: got %q, want the record %q", tc.name, got, record)
			}
		}
		// Only finishes with a mark write history.
		if got := lrange(t, c, hist); len(got) != 1 || got[0] != "done:mark" {
			t.Errorf("history after two finishes: got %q, want [done:mark] once", got)
		}
	})

	t.Run("outcome kept after the lease key expired", func(t *testing.T) {
		key, meta := keys(t)
		mark := key + ":slot"
		lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: 50 * time.Millisecond,
			MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Running: "running", Unwatched: true})
		time.Sleep(100 * time.Millisecond)
		err := lease.Finish(bg, "done:late")
		var fe *locker.FinishError
		if !errors.As(err, &fe) || !errors.Is(err, locker.ErrLeaseExpired) || !fe.Recorded {
			t.Fatalf("Finish: got %v, want a recorded FinishError wrapping ErrLeaseExpired", err)
		}
		if got := hget(t, c, mark, "end"); got != "done:late" {
			t.Errorf("mark end: got %q, want the record", got)
		}
	})

	t.Run("outcome not written over another run's mark", func(t *testing.T) {
		key, meta := keys(t)
		mark := key + ":slot"
		claim := locker.Claim{Key: key, MetaKey: meta, TTL: 50 * time.Millisecond,
			MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Running: "running", Unwatched: true}
		lease := mustObtain(t, l, claim)
		// Another run took over this mark (e.g. after it expired).
		must(t, c.HSet(bg, mark, "token", "other", "fence", "99", "run", "other").Err())
		time.Sleep(100 * time.Millisecond)
		err := lease.Finish(bg, "done:stale")
		var fe *locker.FinishError
		if !errors.As(err, &fe) || !errors.Is(err, locker.ErrLeaseExpired) || fe.Recorded {
			t.Fatalf("Finish: got %v, want a FinishError wrapping ErrLeaseExpired, not recorded", err)
		}
		if hexists(t, c, mark, "end") {
			t.Errorf("mark end: got %q, want none (the mark is another run's)", hget(t, c, mark, "end"))
		}
	})

	t.Run("renewals keep the running mark", func(t *testing.T) {
		key, meta := keys(t)
		mark := key + ":slot"
		lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: 150 * time.Millisecond,
			MarkKey: mark, MarkTTL: 10 * time.Millisecond, Retention: time.Minute, Running: "running"})
		time.Sleep(600 * time.Millisecond)
		runningMark(t, c, mark, lease, "running")
	})

	t.Run("no retention", func(t *testing.T) {
		key, meta := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second})
		if err := lease.Finish(bg, "x"); !errors.Is(err, locker.ErrInvalid) {
			t.Errorf("Finish of a claim without Retention: got %v, want ErrInvalid", err)
		}
		if got := get(t, c, key); got != lease.Token() {
			t.Errorf("key after a refused Finish: got %q, want the lease's token", got)
		}
	})
}

// TestRunningIndex: a claim adds its run to the job's index of running
// runs, Finish removes it, and a run whose holder stopped (its lease expired
// with no Finish) is dropped by the next claim. The index keeps a TTL when
// that drop empties it: a short claim after a long one finished and a short
// one died must not leave an index that never expires.
func TestRunningIndex(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	key, meta := keys(t)
	idx := key + ":running"
	claim := func(name string, ttl time.Duration) *locker.Lease {
		t.Helper()
		return mustObtain(t, l, locker.Claim{Key: key + ":" + name, MetaKey: meta, TTL: ttl, Unwatched: true,
			MarkKey: key + ":slot:" + name, MarkTTL: time.Minute, Retention: time.Minute, Running: "running", RunningKey: idx})
	}
	members := func() []string {
		t.Helper()
		m, err := c.ZRange(bg, idx, 0, -1).Result()
		must(t, err)
		return m
	}

	long := claim("long", time.Minute)
	claim("dying", 100*time.Millisecond) // its holder stops: no renewal, no Finish
	if got, want := members(), []string{key + ":slot:dying", key + ":slot:long"}; !slices.Equal(got, want) {
		t.Fatalf("index after two claims: got %q, want %q", got, want)
	}
	if err := long.Finish(bg, "done"); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if d := pttl(t, c, idx); d < 50*time.Second {
		t.Fatalf("index TTL after the long run finished: got %v, want about its 1m lease", d)
	}
	waitFor(t, 5*time.Second, func() bool { return c.Exists(bg, key+":dying").Val() == 0 })

	claim("short", 10*time.Second)
	if got, want := members(), []string{key + ":slot:short"}; !slices.Equal(got, want) {
		t.Errorf("index after the next claim: got %q, want %q (the dead run dropped)", got, want)
	}
	if d := pttl(t, c, idx); d <= 0 || d > 10*time.Second {
		t.Errorf("index TTL: got %v, want the short claim's 10s (the drop deleted the index)", d)
	}
}

// TestObtainRefused: marks, pauses and busy leases refuse a claim, and say
// so in the error and, where asked, in the mark.
func TestObtainRefused(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, key, mark, pause string)
		busy     string
		want     error
		wantMark string // final record in the mark; "" = no mark
	}{
		{"slot claimed", func(t *testing.T, key, mark, pause string) {
			must(t, c.HSet(bg, mark, "token", "other", "end", "done:ok").Err())
			must(t, c.Expire(bg, mark, time.Minute).Err())
		}, recs.Busy, locker.ErrSlotClaimed, "done:ok"},
		{"paused", func(t *testing.T, key, mark, pause string) {
			must(t, c.Set(bg, pause, "1", time.Minute).Err())
		}, recs.Busy, locker.ErrPaused, recs.Paused},
		{"paused but already marked", func(t *testing.T, key, mark, pause string) {
			must(t, c.Set(bg, pause, "1", time.Minute).Err())
			must(t, c.HSet(bg, mark, "token", "other", "end", "done:ok").Err())
			must(t, c.Expire(bg, mark, time.Minute).Err())
		}, recs.Busy, locker.ErrSlotClaimed, "done:ok"},
		{"busy with record", func(t *testing.T, key, mark, pause string) {
			must(t, c.Set(bg, key, "other", time.Minute).Err())
		}, recs.Busy, locker.ErrNotObtained, recs.Busy},
		{"busy without record", func(t *testing.T, key, mark, pause string) {
			must(t, c.Set(bg, key, "other", time.Minute).Err())
		}, "", locker.ErrNotObtained, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			mark, pause := key+":slot", key+":paused"
			tc.setup(t, key, mark, pause)
			r := recs
			r.Busy = tc.busy
			err := tryObtain(l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second,
				MarkKey: mark, MarkTTL: time.Minute, Retention: time.Hour, Running: "running", PauseKey: pause, Records: r})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Obtain: got %v, want %v", err, tc.want)
			}
			var noe *locker.NotObtainedError
			if !errors.As(err, &noe) {
				t.Fatalf("Obtain: got %T, want a *NotObtainedError", err)
			}
			if noe.TTL <= 0 || noe.TTL > time.Minute {
				t.Errorf("TTL: got %v, want the blocking key's (0, 1m]", noe.TTL)
			}
			if tc.want == locker.ErrSlotClaimed && noe.Record != tc.wantMark {
				t.Errorf("Record: got %q, want %q", noe.Record, tc.wantMark)
			}
			if tc.wantMark == "" {
				if exists(t, c, mark) {
					t.Errorf("mark: got %v, want none", hgetall(t, c, mark))
				}
			} else {
				if got := hget(t, c, mark, "end"); got != tc.wantMark {
					t.Errorf("mark end: got %q, want %q", got, tc.wantMark)
				}
				if d := pttl(t, c, mark); d <= 0 {
					t.Errorf("mark TTL: got %v, want one", d)
				}
			}
			if hexists(t, c, meta, "fence") {
				t.Errorf("fence counter moved on a refused claim: %q", hget(t, c, meta, "fence"))
			}
			if got := get(t, c, key); tc.want != locker.ErrNotObtained && got != "" {
				t.Errorf("lease key: got %q, want none", got)
			}
		})
	}

	// A paused slot is recorded and refused with ErrPaused once: every
	// other replica's claim of it sees the record and ErrSlotClaimed.
	t.Run("paused slot counted once", func(t *testing.T) {
		key, meta := keys(t)
		mark, pause := key+":slot", key+":paused"
		must(t, c.Set(bg, pause, "1", time.Minute).Err())
		claim := locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute,
			Retention: time.Hour, PauseKey: pause, Records: recs}
		var paused, claimed int
		for range 3 {
			err := tryObtain(l, claim)
			var noe *locker.NotObtainedError
			switch {
			case errors.Is(err, locker.ErrPaused):
				paused++
			case errors.Is(err, locker.ErrSlotClaimed) && errors.As(err, &noe) && noe.Record == recs.Paused:
				claimed++
			default:
				t.Fatalf("Obtain of a paused slot: got %v, want ErrPaused once, then ErrSlotClaimed with record %q", err, recs.Paused)
			}
		}
		if paused != 1 || claimed != 2 {
			t.Errorf("got %d ErrPaused and %d ErrSlotClaimed, want 1 and 2", paused, claimed)
		}
	})

	t.Run("invalid claims", func(t *testing.T) {
		key, meta := keys(t)
		mark := key + ":m"
		slot := time.Unix(1700000000, 0)
		for _, tc := range []struct {
			name string
			c    locker.Claim
		}{
			{"no key", locker.Claim{MetaKey: meta, TTL: time.Second}},
			{"no meta", locker.Claim{Key: key, TTL: time.Second}},
			{"no TTL", locker.Claim{Key: key, MetaKey: meta}},
			{"TTL below 1ms", locker.Claim{Key: key, MetaKey: meta, TTL: time.Microsecond}},
			{"mark without TTLs", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark}},
			{"mark without retention", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute}},
			{"mark without mark TTL", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, Retention: time.Minute}},
			{"history without TTL", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, HistoryKey: key + ":h", HistoryLen: 3}},
			{"history without length", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, HistoryKey: key + ":h", HistoryTTL: time.Hour}},
			{"slot without mark", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, Slot: slot, Records: recs}},
			{"slot without late record", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot}},
			{"slot not whole seconds", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot.Add(time.Millisecond), Records: recs}},
			{"replace without next key", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, Replace: true}},
			{"previous slot after due", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot, Records: recs,
				Due: slot, PrevSlot: slot.Add(-time.Second), PrevUntil: slot.Add(time.Millisecond)}},
			{"previous slot not before", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot, Records: recs,
				Due: slot, PrevSlot: slot, PrevUntil: slot}},
			{"previous slot not whole seconds", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot, Records: recs,
				Due: slot, PrevSlot: slot.Add(-time.Millisecond), PrevUntil: slot}},
			{"previous slot missing", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, Retention: time.Minute, Slot: slot, Records: recs,
				Due: slot, PrevUntil: slot}},
			{"previous slot without a slot claim", locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, PrevSlot: slot.Add(-time.Second), PrevUntil: slot}},
		} {
			if _, err := l.Bid(tc.c); !errors.Is(err, locker.ErrInvalid) {
				t.Errorf("%s: Bid: got %v, want ErrInvalid", tc.name, err)
			}
			if err := tryObtain(l, tc.c); !errors.Is(err, locker.ErrInvalid) {
				t.Errorf("%s: Obtain: got %v, want ErrInvalid", tc.name, err)
			}
		}
		if exists(t, c, key) || exists(t, c, meta) || exists(t, c, mark) {
			t.Errorf("an invalid claim wrote to Redis")
		}
		if _, err := locker.NewQuorum(nil, locker.Options{}); !errors.Is(err, locker.ErrInvalid) {
			t.Errorf("NewQuorum(nil): got %v, want ErrInvalid", err)
		}
		if _, err := locker.NewQuorum([]locker.Client{c, nil}, locker.Options{}); !errors.Is(err, locker.ErrInvalid) {
			t.Errorf("NewQuorum with a nil client: got %v, want ErrInvalid", err)
		}
	})

	t.Run("retries", func(t *testing.T) {
		key, meta := keys(t)
		must(t, c.Set(bg, key, "other", 150*time.Millisecond).Err())
		l := mustNew(t, c, locker.Options{Retries: 50, RetryDelay: 30 * time.Millisecond})
		lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second})
		if lease.Fence() != 1 {
			t.Errorf("fence: got %d, want 1", lease.Fence())
		}
	})

	t.Run("no retries after a busy record", func(t *testing.T) {
		key, meta := keys(t)
		must(t, c.Set(bg, key, "other", 150*time.Millisecond).Err())
		l := mustNew(t, c, locker.Options{Retries: 50, RetryDelay: 30 * time.Millisecond})
		err := tryObtain(l, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second,
			MarkKey: key + ":slot", MarkTTL: time.Minute, Retention: time.Minute, Records: recs})
		if !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("Obtain: got %v, want ErrNotObtained at once (the busy skip was recorded)", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		key, meta := keys(t)
		ctx, cancel := context.WithCancel(bg)
		cancel()
		_, err := l.Obtain(ctx, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Obtain with a cancelled context: got %v, want context.Canceled", err)
		}
	})
}

// TestReplace: a Replace claim wins the slot at once and tells the holder to
// stop (by message on Channel, or at its next renewal); the holder's Ctx
// ends with a cause wrapping ErrReplaced and ErrLeaseLost, it keeps its
// lease while it stops (at most one TTL), and the new claim's Obtain
// returns only once the old lease was released or expired, with a greater
// fence.
func TestReplace(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	for _, tc := range []struct {
		name    string
		ttl     time.Duration
		channel bool
		release bool          // the old holder releases once told to stop
		within  time.Duration // the old Ctx ends within this after the new claim
	}{
		// The new claim follows the old one at once, so the old lease's
		// first renewal is TTL/3 = 1s away: only the message is this fast.
		{"message", 3 * time.Second, true, true, 500 * time.Millisecond},
		{"renewal", 1500 * time.Millisecond, false, true, 500*time.Millisecond + 400*time.Millisecond},
		{"renewal, holder never stops", 900 * time.Millisecond, false, false, 300*time.Millisecond + 400*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, meta := keys(t)
			claim := func(slot time.Time) locker.Claim {
				cl := slotClaim(key, meta, slot)
				cl.TTL, cl.Replace, cl.NextKey = tc.ttl, true, key+":next"
				if tc.channel {
					cl.Channel = key + ":stop"
				}
				return cl
			}
			slot := time.Now().Truncate(time.Second).Add(-time.Minute)
			old := mustObtain(t, l, claim(slot))
			next := claim(slot.Add(time.Second))
			b, err := l.Bid(next)
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				lease *locker.Lease
				err   error
				at    time.Time
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				lease, err := b.Obtain(bg)
				done <- result{lease, err, time.Now()}
			}()

			took := waitDone(t, old, 3*tc.ttl)
			stoppedAt := time.Now()
			if took > tc.within {
				t.Errorf("old lease told to stop after %v, want within %v", took, tc.within)
			}
			cause := context.Cause(old.Ctx())
			if !errors.Is(cause, locker.ErrReplaced) || !errors.Is(cause, locker.ErrLeaseLost) {
				t.Errorf("old cause: got %v, want ErrReplaced and ErrLeaseLost", cause)
			}
			// The new claim took the slot at once, but not the lease.
			if got := hget(t, c, next.MarkKey, "token"); got != b.Token() {
				t.Errorf("new slot's mark token: got %q, want the new bid's %q", got, b.Token())
			}
			if got := hget(t, c, meta, "hw"); got != unix(next.Slot) {
				t.Errorf("high-water: got %q, want the new slot %s", got, unix(next.Slot))
			}
			if err := tryObtain(l, next); !errors.Is(err, locker.ErrSlotClaimed) {
				t.Errorf("third claim of the new slot: got %v, want ErrSlotClaimed", err)
			}
			if got := get(t, c, key); got != old.Token() {
				t.Errorf("lease key while the old run stops: got %q, want the old token", got)
			}
			select {
			case r := <-done:
				t.Fatalf("new Obtain returned (%v) after %v, before the old lease ended", r.err, r.at.Sub(start))
			default:
			}

			var released time.Time
			if tc.release {
				time.Sleep(200 * time.Millisecond) // the run takes a while to stop
				select {
				case r := <-done:
					t.Fatalf("new Obtain returned (%v) before the old lease was released", r.err)
				default:
				}
				released = time.Now()
				if err := old.Release(bg); err != nil {
					t.Errorf("old Release: %v", err)
				}
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(3*tc.ttl + 2*time.Second):
				t.Fatalf("new Obtain still waiting %v after the old run was told to stop", time.Since(stoppedAt))
			}
			if r.err != nil {
				t.Fatalf("new Obtain: %v", r.err)
			}
			t.Cleanup(func() { _ = r.lease.Release(bg) })
			if tc.release {
				if r.at.Before(released) {
					t.Errorf("new Obtain returned %v before the old Release", released.Sub(r.at))
				}
				if wait := r.at.Sub(released); wait > time.Second {
					t.Errorf("new Obtain returned %v after the old Release, want soon", wait)
				}
			} else {
				// Still renewed for up to one TTL after it was told: the key
				// outlives that told-renewal by a TTL at least.
				if wait := r.at.Sub(stoppedAt); wait < tc.ttl-200*time.Millisecond {
					t.Errorf("new Obtain returned %v after the old run was told to stop, want at least about TTL %v (the old lease is kept while it stops)", wait, tc.ttl)
				}
				if cause := context.Cause(old.Ctx()); !errors.Is(cause, locker.ErrReplaced) {
					t.Errorf("old cause after expiry: got %v, want ErrReplaced kept", cause)
				}
			}
			if r.lease.Fence() <= old.Fence() {
				t.Errorf("replacing fence %d, want > old %d", r.lease.Fence(), old.Fence())
			}
			if r.lease.Token() != b.Token() {
				t.Errorf("new lease token %q, want the bid's %q", r.lease.Token(), b.Token())
			}
			if err := r.lease.Ctx().Err(); err != nil {
				t.Errorf("replacing lease ended: %v", context.Cause(r.lease.Ctx()))
			}
			if got := get(t, c, key); got != r.lease.Token() {
				t.Errorf("key: got %q, want the replacing token", got)
			}
			if exists(t, c, key+":next") {
				t.Errorf("successor key left after the hand-over: %q", get(t, c, key+":next"))
			}
			runningMark(t, c, next.MarkKey, r.lease, "running")
		})
	}
}

// TestFenceSurvivesRestart: with AOF (appendfsync always) the fence keeps
// increasing across a Redis restart; scripts are reloaded (NOSCRIPT -> EVAL).
func TestFenceSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	key, meta := keys(t)
	claim := locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, Unwatched: true}
	var last int64
	for round := range 3 {
		for range 3 {
			lease := mustObtain(t, l, claim)
			if lease.Fence() <= last {
				t.Fatalf("round %d: fence %d after %d, want strictly increasing", round, lease.Fence(), last)
			}
			last = lease.Fence()
			if err := lease.Release(bg); err != nil {
				t.Fatalf("Release: %v", err)
			}
		}
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	if got := hget(t, c, meta, "fence"); got != strconv.FormatInt(last, 10) {
		t.Errorf("meta fence after the last restart: got %q, want %d", got, last)
	}
}

// TestTokens: tokens are 128-bit hex and differ.
func TestTokens(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	l := mustNew(t, newClient(t, s), locker.Options{})
	seen := map[string]bool{}
	for i := range 20 {
		key, meta := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key + string(rune('a'+i)), MetaKey: meta, TTL: time.Second, Unwatched: true})
		tok := lease.Token()
		if len(tok) != 32 || seen[tok] {
			t.Fatalf("token %q: want 32 hex chars, unique", tok)
		}
		for _, r := range tok {
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
				t.Fatalf("token %q is not lower-case hex", tok)
			}
		}
		seen[tok] = true
	}
}
