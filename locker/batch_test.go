package locker_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// queueBehind makes n calls, call(0) to call(n-1), queue behind a call in
// flight: with the proxy's requests held, a plug claim of its own is
// written first (it waits for its reply), the n calls queue in the lane
// meanwhile, and then the proxy lets the traffic through, so the n calls go
// out together, in one batch. plugCtx bounds the plug. It returns the n
// calls' errors.
func queueBehind(t *testing.T, l *locker.Locker, p *redistest.Proxy, plugCtx context.Context, n int, call func(i int) error) []error {
	t.Helper()
	p.Hold(redistest.ToServer)
	var wg sync.WaitGroup
	wg.Go(func() {
		key, meta := keys(t)
		lease, err := l.Obtain(plugCtx, locker.Claim{Key: key + ":plug", MetaKey: meta, TTL: time.Minute, Unwatched: true})
		if err == nil {
			_ = lease.Release(bg)
		}
	})
	time.Sleep(100 * time.Millisecond) // the plug is written and held
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = call(i) })
	}
	time.Sleep(200 * time.Millisecond) // the calls queue behind it
	p.Release(redistest.ToServer)
	wg.Wait()
	return errs
}

// batchJob is the lease and meta keys of job i of the test.
func batchJob(t *testing.T, i int) (key, meta string) {
	tag := "redcron:{" + t.Name() + ":" + strconv.Itoa(i) + "}"
	return tag + ":run", tag + ":meta"
}

// obtainFinish obtains c's lease and finishes it with the record "done".
func obtainFinish(l *locker.Locker, c locker.Claim) error {
	lease, err := l.Obtain(bg, c)
	if err == nil {
		err = lease.Finish(bg, "done")
	}
	return err
}

// evalCalls is how many EVALSHA and EVAL commands the server ran since its
// statistics were reset.
func evalCalls(t *testing.T, s *redistest.Server) (evalsha, eval int) {
	t.Helper()
	stats := s.Client(t).Info(bg, "commandstats").Val()
	return redistest.CommandCalls(t, stats, "evalsha"), redistest.CommandCalls(t, stats, "eval")
}

func resetStats(t *testing.T, s *redistest.Server) {
	t.Helper()
	if err := s.Client(t).ConfigResetStat(bg).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchedCalls: the script calls of one batch travel in one EVALSHA of
// batch.lua, and each gets the reply, error or acknowledgement it gets when
// sent alone: claims and finishes of many jobs, a call that raises an
// error, the batch after SCRIPT FLUSH, a batch whose reply is cut (each
// claim retried as itself), and claims that no replica acknowledges;
// Options.Unbatched sends each call on its own.
func TestBatchedCalls(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	c, p := viaProxy(t, s)
	l := mustNew(t, c, locker.Options{NodeTimeout: 5 * time.Second})
	slot := time.Now().Truncate(time.Second)
	const n = 20

	t.Run("claims and finishes", func(t *testing.T) {
		resetStats(t, s)
		leases := make([]*locker.Lease, n)
		errs := queueBehind(t, l, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			var err error
			leases[i], err = l.Obtain(bg, slotClaim(key, meta, slot))
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("claim %d: %v", i, err)
			}
			if leases[i].Fence() != 1 {
				t.Errorf("claim %d: got fence %d, want 1", i, leases[i].Fence())
			}
		}
		errs = queueBehind(t, l, p, bg, n, func(i int) error {
			return leases[i].Finish(bg, "done:"+strconv.Itoa(i))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("finish %d: %v", i, err)
			}
			key, _ := batchJob(t, i)
			if got := s.Client(t).HGet(bg, markOf(key, slot), "end").Val(); got != "done:"+strconv.Itoa(i) {
				t.Errorf("finish %d: got record %q in the mark, want %q", i, got, "done:"+strconv.Itoa(i))
			}
		}
		// Each batch: the plug's claim and release, alone or in the batch,
		// and one batch.lua call for the n calls queued behind the plug
		// (sent alone, they take 2n).
		if sha, _ := evalCalls(t, s); sha > 6 {
			t.Errorf("EVALSHA calls for a batch of %d claims and one of %d finishes: got %d, want at most 6", n, n, sha)
		}
	})

	t.Run("a call that raises an error", func(t *testing.T) {
		const bad = 7
		key, meta := batchJob(t, bad)
		if err := s.Client(t).Set(bg, meta, "not a hash", 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, alone := l.Obtain(bg, slotClaim(key, meta, slot))
		if alone == nil || !strings.Contains(alone.Error(), "WRONGTYPE") {
			t.Fatalf("claim on a meta key that is not a hash, alone: got %v, want WRONGTYPE", alone)
		}
		errs := queueBehind(t, l, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			return obtainFinish(l, slotClaim(key, meta, slot.Add(time.Second)))
		})
		for i, err := range errs {
			switch {
			case i == bad && (err == nil || !strings.Contains(err.Error(), "WRONGTYPE")):
				t.Errorf("claim %d, in a batch: got %v, want WRONGTYPE as alone (%v)", i, err, alone)
			case i != bad && err != nil:
				t.Errorf("claim %d, in a batch beside a failing one: %v", i, err)
			}
		}
	})

	t.Run("scripts flushed", func(t *testing.T) {
		if err := s.Client(t).ScriptFlush(bg).Err(); err != nil {
			t.Fatal(err)
		}
		resetStats(t, s)
		errs := queueBehind(t, l, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			return obtainFinish(l, slotClaim(key, meta, slot.Add(2*time.Second)))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("claim %d after SCRIPT FLUSH: %v", i, err)
			}
		}
		// The plug's claim loads obtain.lua, the batch batch.lua, as EVAL
		// (the plug's release and the finishes go alone or batched).
		if _, eval := evalCalls(t, s); eval < 2 {
			t.Errorf("EVAL calls: got %d, want at least 2 (obtain, batch)", eval)
		}
	})

	t.Run("reply cut", func(t *testing.T) {
		// The plug gives up at its deadline, freeing the lane; the batch
		// behind it is written, runs once its request is let through, and
		// its reply is cut.
		p.Hold(redistest.ToClient)
		plug, cancel := context.WithTimeout(bg, 500*time.Millisecond)
		defer cancel()
		bids := make([]*locker.Bid, n)
		var ran sync.WaitGroup
		ran.Add(1)
		go func() {
			defer ran.Done()
			// Cut the batch's reply once it ran on the server: every mark is there.
			for range 100 {
				time.Sleep(50 * time.Millisecond)
				ok := true
				for i := range n {
					key, _ := batchJob(t, i)
					if s.Client(t).Exists(bg, markOf(key, slot.Add(3*time.Second))).Val() == 0 {
						ok = false
						break
					}
				}
				if ok {
					p.Cut()
					break
				}
			}
			p.Release(redistest.ToClient)
		}()
		errs := queueBehind(t, l, p, plug, n, func(i int) error {
			key, meta := batchJob(t, i)
			var err error
			if bids[i], err = l.Bid(slotClaim(key, meta, slot.Add(3*time.Second))); err != nil {
				return err
			}
			_, err = bids[i].Obtain(bg)
			return err
		})
		ran.Wait()
		for i, err := range errs {
			if err == nil || errors.Is(err, locker.ErrNotObtained) {
				t.Fatalf("claim %d: got %v, want an I/O error (its reply was cut)", i, err)
			}
		}
		for i, bid := range bids {
			lease, err := bid.Obtain(bg)
			if err != nil {
				t.Errorf("claim %d retried as itself: %v", i, err)
				continue
			}
			if lease.Fence() != 1 {
				t.Errorf("claim %d retried as itself: got fence %d, want 1 (the fence it took in the batch)", i, lease.Fence())
			}
			if err := lease.Finish(bg, "done"); err != nil {
				t.Errorf("finish %d: %v", i, err)
			}
		}
	})

	t.Run("Unbatched", func(t *testing.T) {
		one := mustNew(t, c, locker.Options{NodeTimeout: 5 * time.Second, Unbatched: true})
		resetStats(t, s)
		errs := queueBehind(t, one, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			return obtainFinish(one, slotClaim(key, meta, slot))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("claim %d: %v", i, err)
			}
		}
		if sha, _ := evalCalls(t, s); sha < 2*n {
			t.Errorf("EVALSHA calls: got %d, want at least %d (each call on its own)", sha, 2*n)
		}
	})

	t.Run("not acknowledged", func(t *testing.T) {
		// No replica: every claim of the batch wins on the master but
		// fails with ErrNotAcked, as alone.
		ack := mustNew(t, c, locker.Options{NodeTimeout: 5 * time.Second, MinReplicasAck: 1, AckTimeout: 200 * time.Millisecond})
		errs := queueBehind(t, ack, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			bid, err := ack.Bid(slotClaim(key, meta, slot.Add(4*time.Second)))
			if err != nil {
				return err
			}
			_, err = bid.Obtain(bg)
			return err
		})
		for i, err := range errs {
			if !errors.Is(err, locker.ErrNotAcked) {
				t.Errorf("claim %d: got %v, want ErrNotAcked", i, err)
			}
		}
	})
}

// TestBatchRefusedAcrossSlots: a server that refuses a script call whose
// keys span hash slots (a cluster node reached by a plain client, as a
// proxy in front of several servers may be) ran none of a batch.lua call:
// its calls are sent again on their own, and win, and the lane sends every
// later call on its own.
func TestBatchRefusedAcrossSlots(t *testing.T) {
	node := redistest.StartCluster(t, 1)[0] // every slot: one job's calls are served
	c, p := viaProxy(t, node)
	l := mustNew(t, c, locker.Options{NodeTimeout: 5 * time.Second})
	slot := time.Now().Truncate(time.Second)
	const n = 20
	for round := range 2 {
		resetStats(t, node)
		errs := queueBehind(t, l, p, bg, n, func(i int) error {
			key, meta := batchJob(t, i)
			return obtainFinish(l, slotClaim(key, meta, slot.Add(time.Duration(round)*time.Second)))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, claim %d: %v", round, i, err)
			}
		}
		// Alone, the n claims and n finishes are 2n script calls.
		if sha, _ := evalCalls(t, node); sha < 2*n {
			t.Errorf("round %d: EVALSHA calls: got %d, want at least %d (each call on its own)", round, sha, 2*n)
		}
	}
}
