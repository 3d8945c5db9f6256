package locker_test

import (
	"context"
	"errors"
	"math/rand/v2"
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
	key, fence := keys(t)
	var lockers [3]*locker.Locker
	for i := range lockers {
		lockers[i] = locker.New(s.Client(t), locker.Options{})
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := lockers[g%3]
			// Half the goroutines use watched leases, half unwatched.
			c := locker.Claim{Key: key, FenceKey: fence, TTL: 2 * time.Second, Unwatched: g%2 == 0}
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
		}()
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

// TestWatchedOutlivesTTL: the watchdog keeps a lease for 5 x TTL.
func TestWatchedOutlivesTTL(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	key, fence := keys(t)
	const ttl = 300 * time.Millisecond
	l := locker.New(c, locker.Options{})
	lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
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
	c := s.Client(t)
	key, fence := keys(t)
	const ttl = 300 * time.Millisecond
	l := locker.New(c, locker.Options{})
	lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, Unwatched: true})

	time.Sleep(ttl / 2)
	if err := lease.Renew(bg); err != nil {
		t.Fatalf("Renew within TTL: %v", err)
	}
	time.Sleep(ttl + 100*time.Millisecond)
	if exists(t, c, key) {
		t.Fatalf("key still exists %v after the last renewal, TTL %v", ttl+100*time.Millisecond, ttl)
	}
	err := lease.Renew(bg)
	if !errors.Is(err, locker.ErrLeaseExpired) || !errors.Is(err, locker.ErrLeaseLost) {
		t.Fatalf("Renew after expiry: got %v, want ErrLeaseExpired and ErrLeaseLost", err)
	}
	if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
		t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
	}
}

// TestLoss: a key deleted or overwritten from outside ends the lease within
// TTL/3 plus a margin, with cause ErrLeaseLost.
func TestLoss(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	const ttl = 600 * time.Millisecond
	l := locker.New(c, locker.Options{})
	for _, tc := range []struct {
		name  string
		fault func(key string) error
	}{
		{"deleted", func(key string) error { return c.Del(bg, key).Err() }},
		{"overwritten", func(key string) error { return c.Set(bg, key, "someone-else", time.Minute).Err() }},
		{"expired", func(key string) error { return c.PExpire(bg, key, time.Millisecond).Err() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, fence := keys(t)
			lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
			if err := tc.fault(key); err != nil {
				t.Fatal(err)
			}
			if took := waitDone(t, lease, 2*time.Second); took > ttl/3+150*time.Millisecond {
				t.Errorf("lease lost after %v, want within TTL/3 + 150ms = %v", took, ttl/3+150*time.Millisecond)
			}
			if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
				t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
			}
			if err := lease.Renew(bg); !errors.Is(err, locker.ErrLeaseLost) {
				t.Errorf("Renew after loss: got %v, want ErrLeaseLost", err)
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
	c := s.Client(t)
	key, fence := keys(t)
	const ttl = 300 * time.Millisecond
	// A node timeout far beyond the TTL: only the deadline can end the wait.
	l := locker.New(c, locker.Options{NodeTimeout: 5 * time.Second})
	lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
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
	if late := lostAt.Sub(deadline); late > 150*time.Millisecond {
		t.Errorf("lease lost %v after its deadline, want at most 150ms", late)
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
	c := s.Client(t)
	l := locker.New(c, locker.Options{})
	const ttl = 100 * time.Millisecond
	end := map[string]func(*locker.Lease) error{
		"Release": func(l *locker.Lease) error { return l.Release(bg) },
		"Finish":  func(l *locker.Lease) error { return l.Finish(bg, "done:late", time.Minute) },
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
				key, fence := keys(t)
				old := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, Unwatched: true})
				time.Sleep(ttl + 50*time.Millisecond)
				var holder *locker.Lease
				if tc.takeover {
					holder = mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: time.Minute, Unwatched: true})
				}
				err := fn(old)
				if !errors.Is(err, tc.want) {
					t.Fatalf("%s: got %v, want %v", op, err, tc.want)
				}
				if got := context.Cause(old.Ctx()); got != locker.ErrReleased {
					t.Errorf("cause: got %v, want %v", got, locker.ErrReleased)
				}
				if holder == nil {
					if exists(t, c, key) {
						t.Errorf("%s after expiry created the key", op)
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

// TestFinish: the final record replaces the running mark for the retention,
// the lease key goes, and history stays bounded; without a mark the lease
// key itself keeps the record.
func TestFinish(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	l := locker.New(c, locker.Options{})

	t.Run("mark and history", func(t *testing.T) {
		key, fence := keys(t)
		hist := key + ":history"
		for i := range 5 {
			mark := key + ":slot:" + string(rune('a'+i))
			lease := mustObtain(t, l, locker.Claim{
				Key: key, FenceKey: fence, TTL: time.Second,
				MarkKey: mark, MarkTTL: time.Minute,
				HistoryKey: hist, HistoryLen: 3, HistoryTTL: time.Hour,
			})
			want := "running:" + lease.Token() + ":"
			if got := get(t, c, mark); len(got) <= len(want) || got[:len(want)] != want {
				t.Fatalf("running mark: got %q, want prefix %q", got, want)
			}
			record := "done:" + string(rune('a'+i))
			if err := lease.Finish(bg, record, 10*time.Minute); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if got := get(t, c, mark); got != record {
				t.Errorf("mark: got %q, want %q", got, record)
			}
			if d := pttl(t, c, mark); d < 9*time.Minute {
				t.Errorf("mark TTL: got %v, want the 10m retention", d)
			}
			if exists(t, c, key) {
				t.Errorf("lease key still exists after Finish")
			}
		}
		got, err := c.LRange(bg, hist, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"done:e", "done:d", "done:c"}; len(got) != 3 || got[0] != want[0] || got[2] != want[2] {
			t.Errorf("history: got %q, want %q", got, want)
		}
		if d := pttl(t, c, hist); d <= 0 || d > time.Hour {
			t.Errorf("history TTL: got %v, want (0, 1h]", d)
		}
	})

	t.Run("no mark keeps the key", func(t *testing.T) {
		key, fence := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second})
		if err := lease.Finish(bg, "done:ok", time.Minute); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := get(t, c, key); got != "done:ok" {
			t.Errorf("key: got %q, want the record", got)
		}
		if d := pttl(t, c, key); d < 50*time.Second {
			t.Errorf("key TTL: got %v, want about 1m", d)
		}
		if _, err := l.Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second}); !errors.Is(err, locker.ErrNotObtained) {
			t.Errorf("Obtain after Finish: got %v, want ErrNotObtained", err)
		}
	})

	t.Run("outcome kept after the lease key expired", func(t *testing.T) {
		key, fence := keys(t)
		mark := key + ":slot"
		lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: 50 * time.Millisecond, MarkKey: mark, MarkTTL: time.Minute, Unwatched: true})
		time.Sleep(100 * time.Millisecond)
		err := lease.Finish(bg, "done:late", time.Minute)
		var fe *locker.FinishError
		if !errors.As(err, &fe) || !errors.Is(err, locker.ErrLeaseExpired) || !fe.Recorded {
			t.Fatalf("Finish: got %v, want a recorded FinishError wrapping ErrLeaseExpired", err)
		}
		if got := get(t, c, mark); got != "done:late" {
			t.Errorf("mark: got %q, want the record", got)
		}
	})

	t.Run("renewals keep the running mark", func(t *testing.T) {
		key, fence := keys(t)
		mark := key + ":slot"
		lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: 150 * time.Millisecond, MarkKey: mark, MarkTTL: 10 * time.Millisecond})
		time.Sleep(600 * time.Millisecond)
		if got, want := get(t, c, mark), "running:"+lease.Token()+":"; len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("mark after 4 x TTL: got %q, want prefix %q", got, want)
		}
	})

	t.Run("bad retention", func(t *testing.T) {
		key, fence := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second})
		if err := lease.Finish(bg, "x", 0); !errors.Is(err, locker.ErrInvalid) {
			t.Errorf("Finish with 0 retention: got %v, want ErrInvalid", err)
		}
	})
}

// TestObtainRefused: marks, pauses and busy leases refuse a claim, and say
// so in the error and, where asked, in the mark.
func TestObtainRefused(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	l := locker.New(c, locker.Options{})
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, key, mark, pause string)
		busy     string
		want     error
		wantMark string // "" = absent
	}{
		{"slot claimed", func(t *testing.T, key, mark, pause string) { c.Set(bg, mark, "done:ok", time.Minute) }, "", locker.ErrSlotClaimed, "done:ok"},
		{"paused", func(t *testing.T, key, mark, pause string) { c.Set(bg, pause, "1", time.Minute) }, "", locker.ErrPaused, "skipped:paused"},
		{"paused but already marked", func(t *testing.T, key, mark, pause string) {
			c.Set(bg, pause, "1", time.Minute)
			c.Set(bg, mark, "done:ok", time.Minute)
		}, "", locker.ErrSlotClaimed, "done:ok"},
		{"busy with record", func(t *testing.T, key, mark, pause string) { c.Set(bg, key, "other", time.Minute) }, "skipped:overlap", locker.ErrNotObtained, "skipped:overlap"},
		{"busy without record", func(t *testing.T, key, mark, pause string) { c.Set(bg, key, "other", time.Minute) }, "", locker.ErrNotObtained, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, fence := keys(t)
			mark, pause := key+":slot", key+":paused"
			tc.setup(t, key, mark, pause)
			_, err := l.Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, PauseKey: pause, BusyRecord: tc.busy})
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
			if got := get(t, c, mark); got != tc.wantMark {
				t.Errorf("mark: got %q, want %q", got, tc.wantMark)
			}
			if exists(t, c, fence) {
				t.Errorf("fence counter moved on a refused claim")
			}
		})
	}

	// A paused slot is recorded and refused with ErrPaused once: every
	// other replica's claim of it sees the record and ErrSlotClaimed.
	t.Run("paused slot counted once", func(t *testing.T) {
		key, fence := keys(t)
		mark, pause := key+":slot", key+":paused"
		c.Set(bg, pause, "1", time.Minute)
		claim := locker.Claim{Key: key, FenceKey: fence, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, PauseKey: pause}
		var paused, claimed int
		for range 3 {
			_, err := l.Obtain(bg, claim)
			var noe *locker.NotObtainedError
			switch {
			case errors.Is(err, locker.ErrPaused):
				paused++
			case errors.Is(err, locker.ErrSlotClaimed) && errors.As(err, &noe) && noe.Record == locker.SkippedPaused:
				claimed++
			default:
				t.Fatalf("Obtain of a paused slot: got %v, want ErrPaused once, then ErrSlotClaimed with record %q", err, locker.SkippedPaused)
			}
		}
		if paused != 1 || claimed != 2 {
			t.Errorf("got %d ErrPaused and %d ErrSlotClaimed, want 1 and 2", paused, claimed)
		}
	})

	t.Run("invalid claims", func(t *testing.T) {
		key, fence := keys(t)
		for _, c := range []locker.Claim{
			{FenceKey: fence, TTL: time.Second},
			{Key: key, TTL: time.Second},
			{Key: key, FenceKey: fence},
			{Key: key, FenceKey: fence, TTL: time.Second, MarkKey: key + ":m"},
			{Key: key, FenceKey: fence, TTL: time.Second, HistoryKey: key + ":h", HistoryLen: 3},
		} {
			if _, err := l.Obtain(bg, c); !errors.Is(err, locker.ErrInvalid) {
				t.Errorf("Obtain(%+v): got %v, want ErrInvalid", c, err)
			}
		}
	})

	t.Run("retries", func(t *testing.T) {
		key, fence := keys(t)
		c.Set(bg, key, "other", 150*time.Millisecond)
		l := locker.New(c, locker.Options{Retries: 50, RetryDelay: 30 * time.Millisecond})
		lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second})
		if lease.Fence() != 1 {
			t.Errorf("fence: got %d, want 1", lease.Fence())
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		key, fence := keys(t)
		ctx, cancel := context.WithCancel(bg)
		cancel()
		_, err := l.Obtain(ctx, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Obtain with a cancelled context: got %v, want context.Canceled", err)
		}
	})
}

// TestReplace: a Replace claim takes the key; the old holder loses its lease
// at its next renewal, and the new fence is greater.
func TestReplace(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := s.Client(t)
	l := locker.New(c, locker.Options{})
	key, fence := keys(t)
	const ttl = 300 * time.Millisecond
	old := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
	repl := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, Replace: true})
	if took := waitDone(t, old, 2*time.Second); took > ttl/3+150*time.Millisecond {
		t.Errorf("old lease lost after %v, want within TTL/3 + 150ms", took)
	}
	if got := context.Cause(old.Ctx()); got != locker.ErrLeaseLost {
		t.Errorf("old cause: got %v, want %v", got, locker.ErrLeaseLost)
	}
	if repl.Fence() <= old.Fence() {
		t.Errorf("replacing fence %d, want > old %d", repl.Fence(), old.Fence())
	}
	if err := repl.Ctx().Err(); err != nil {
		t.Errorf("replacing lease ended: %v", err)
	}
	if got := get(t, c, key); got != repl.Token() {
		t.Errorf("key: got %q, want the replacing token", got)
	}
}

// TestFenceSurvivesRestart: with AOF (appendfsync always) the fence keeps
// increasing across a Redis restart; scripts are reloaded (NOSCRIPT -> EVAL).
func TestFenceSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{AOF: true})
	c := s.Client(t)
	l := locker.New(c, locker.Options{})
	key, fence := keys(t)
	claim := locker.Claim{Key: key, FenceKey: fence, TTL: time.Second, Unwatched: true}
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
}

// TestTokens: tokens are 128-bit hex and differ.
func TestTokens(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	l := locker.New(s.Client(t), locker.Options{})
	seen := map[string]bool{}
	for i := range 20 {
		key, fence := keys(t)
		lease := mustObtain(t, l, locker.Claim{Key: key + string(rune('a'+i)), FenceKey: fence, TTL: time.Second, Unwatched: true})
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
