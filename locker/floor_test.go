package locker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// TestClaimPastMarkFloorRing: a claim held on its way to Redis (a proxy
// holds its request) arrives after a later slot's claim passed its slot
// over, and past MarkFloor, when the slot's mark would no longer prove
// that it was never decided. On a single node the job's ring still proves
// it: the held claim records its slot late (before, it answered "claimed"
// and no replica recorded the slot). Where the ring cannot tell (the slot
// decided and its mark gone, the ring stale or its key lost, a record
// only in the history) the claim is refused as claimed and writes
// nothing. In quorum mode, where a node may have missed a claim that a
// majority granted, the ring is not used. On redis-server and on the
// embedded server.
func TestClaimPastMarkFloorRing(t *testing.T) {
	t.Parallel()
	onBothServers(t, claimPastMarkFloorRing)
	t.Run("quorum", func(t *testing.T) {
		t.Parallel()
		var cs []*redis.Client
		for range 3 {
			cs = append(cs, newClient(t, redistest.Start(t, redistest.Options{})))
		}
		lq := newQuorum(t, cs, locker.Options{})
		key, meta := keys(t)
		s := time.Now().Truncate(time.Second).Add(-20 * time.Second)
		cl := func(slot time.Time) locker.Claim {
			c := slotClaim(key, meta, slot)
			c.MarkFloor, c.RingKey = 6*time.Second, key+":ring"
			return c
		}
		obtainRelease(t, lq, cl(s.Add(-time.Second)))
		obtainRelease(t, lq, cl(s.Add(time.Second)))
		if _, err := lq.Obtain(bg, cl(s)); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Fatalf("got %v, want ErrSlotClaimed (the ring unused)", err)
		}
		for i, c := range cs {
			if exists(t, c, cl(s).MarkKey) {
				t.Errorf("node %d: a refused claim wrote the mark", i)
			}
		}
	})
}

func claimPastMarkFloorRing(t *testing.T, addr string) {
	direct := clientAt(t, addr)
	p, err := redistest.NewProxy(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	held := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, DialTimeout: time.Second, ContextTimeoutEnabled: true,
		ReadTimeout: 10 * time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = held.Close() })
	lb := mustNew(t, direct, locker.Options{})
	la := mustNew(t, held, locker.Options{NodeTimeout: 10 * time.Second})
	// 20 s in the past: every claim comes past MarkFloor (6 s, as the
	// scheduler's), none past a claim window (none set).
	s := time.Now().Truncate(time.Second).Add(-20 * time.Second)

	for i, tc := range []struct {
		name     string
		before   func(t *testing.T, cl func(time.Time, bool) locker.Claim) // B's steps
		want     error                                                     // nil: recorded late
		markGone bool                                                      // B's steps claimed the slot and deleted its mark
	}{
		{"passed over by a later slot", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			obtainRelease(t, lb, cl(s.Add(time.Second), true))
		}, nil, false},
		{"decided, its mark gone", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			c := cl(s, true)
			obtainRelease(t, lb, c)
			must(t, direct.Del(bg, c.MarkKey).Err())
			obtainRelease(t, lb, cl(s.Add(time.Second), true))
		}, locker.ErrSlotClaimed, true},
		{"the high-water raised without the ring", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			obtainRelease(t, lb, cl(s.Add(time.Second), false))
		}, locker.ErrSlotClaimed, false},
		{"the ring lost", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			obtainRelease(t, lb, cl(s.Add(time.Second), true))
			must(t, direct.Del(bg, cl(s, true).RingKey).Err()) // as an eviction would
		}, locker.ErrSlotClaimed, false},
		{"the ring lost, then a later claim", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			obtainRelease(t, lb, cl(s.Add(time.Second), true))
			must(t, direct.Del(bg, cl(s, true).RingKey).Err())
			obtainRelease(t, lb, cl(s.Add(2*time.Second), true)) // restarts the ring
		}, locker.ErrSlotClaimed, false},
		{"a record in the history only", func(t *testing.T, cl func(time.Time, bool) locker.Claim) {
			obtainRelease(t, lb, cl(s.Add(-time.Second), true))
			obtainRelease(t, lb, cl(s.Add(time.Second), true))
			c := cl(s, true)
			must(t, direct.ZAdd(bg, c.HistoryKey, redis.Z{Score: float64(s.UnixMilli()), Member: "skipped:old"}).Err())
		}, locker.ErrSlotClaimed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, meta := keys(t)
			cl := func(slot time.Time, ring bool) locker.Claim {
				c := slotClaim(key, meta, slot)
				c.MarkFloor = 6 * time.Second
				c.HistoryKey, c.HistoryLen, c.HistoryTTL = key+":history", 10, time.Hour
				if ring {
					c.RingKey = key + ":ring"
				}
				return c
			}
			// A's claim of s leaves first and is held; B's steps go by it.
			p.Hold(redistest.ToServer)
			type result struct {
				lease *locker.Lease
				err   error
			}
			done := make(chan result, 1)
			go func() {
				lease, err := la.Obtain(bg, cl(s, true))
				done <- result{lease, err}
			}()
			waitFor(t, 5*time.Second, func() bool { return p.Pending(redistest.ToServer) > 0 })
			tc.before(t, cl)
			p.Release(redistest.ToServer)
			r := <-done
			if r.err == nil {
				_ = r.lease.Release(bg)
				t.Fatalf("case %d: got the lease, want the claim refused", i)
			}
			mark := cl(s, true).MarkKey
			if tc.want != nil {
				if !errors.Is(r.err, tc.want) {
					t.Fatalf("got %v, want %v", r.err, tc.want)
				}
				if !tc.markGone && exists(t, direct, mark) {
					t.Errorf("a refused claim wrote the mark: %v", hgetall(t, direct, mark))
				}
				return
			}
			if !errors.Is(r.err, locker.ErrLate) {
				t.Fatalf("got %v, want ErrLate (recorded late)", r.err)
			}
			if got := hget(t, direct, mark, "end"); got != recs.Late {
				t.Errorf("mark end: got %q, want %q", got, recs.Late)
			}
			if n := direct.ZCount(bg, key+":history", "-inf", "+inf").Val(); n != 1 {
				t.Errorf("history: got %d records, want 1 (the late skip)", n)
			}
			// Recorded once: with its mark gone, the ring shows it decided.
			must(t, direct.Del(bg, mark).Err())
			if _, err := lb.Obtain(bg, cl(s, true)); !errors.Is(err, locker.ErrSlotClaimed) {
				t.Errorf("claim again, its mark gone: got %v, want ErrSlotClaimed", err)
			}
		})
	}
}

// obtainRelease obtains c's lease with l and releases it.
func obtainRelease(t *testing.T, l *locker.Locker, c locker.Claim) {
	t.Helper()
	lease, err := l.Obtain(bg, c)
	if err != nil {
		t.Fatalf("claim of %v: %v", c.Slot.Format(time.TimeOnly), err)
	}
	must(t, lease.Release(bg))
}
