package locker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// TestPipelining: calls that concurrent callers make to one node are
// pipelined together; each keeps its own reply, order, context and timeout.
func TestPipelining(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)

	t.Run("concurrent cycles", func(t *testing.T) {
		l := mustNew(t, c, locker.Options{NodeTimeout: 2 * time.Second})
		const callers, cycles = 64, 20
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for g := range callers {
			wg.Go(func() {
				tag := "{" + t.Name() + ":" + strconv.Itoa(g) + "}"
				for i := 1; i <= cycles; i++ {
					lease, err := l.Obtain(bg, locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: time.Minute, Unwatched: true})
					if err != nil {
						errs <- err
						return
					}
					if lease.Fence() != int64(i) {
						errs <- fmt.Errorf("caller %d: got fence %d, want %d", g, lease.Fence(), i)
						return
					}
					if err := lease.Release(bg); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("scripts flushed", func(t *testing.T) {
		l := mustNew(t, c, locker.Options{NodeTimeout: 2 * time.Second})
		if err := c.ScriptFlush(bg).Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for g := range 32 {
			wg.Go(func() {
				tag := "{" + t.Name() + ":" + strconv.Itoa(g) + "}"
				claim := locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: time.Minute, Retention: time.Minute, Unwatched: true}
				if g%2 == 1 { // the slot path of obtain.lua and finish.lua
					slot := time.Unix(1700000000, 0)
					claim.MarkKey, claim.MarkTTL, claim.Running = markOf(claim.Key, slot), time.Minute, "running"
					claim.Slot, claim.Records = slot, recs
				}
				lease, err := l.Obtain(bg, claim)
				if err == nil {
					err = lease.Finish(bg, "done:ok")
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("after SCRIPT FLUSH: %v", err)
		}
	})

	// While the node is paused, calls queue behind the one in flight: a
	// cancelled caller gets its context's error, the others their timeout;
	// after resume the node serves claims again.
	t.Run("queued calls keep their context and timeout", func(t *testing.T) {
		l := mustNew(t, c, locker.Options{NodeTimeout: time.Second})
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		resumed := false
		t.Cleanup(func() {
			if !resumed {
				_ = s.Resume()
			}
		})
		claim := func(i int) locker.Claim {
			tag := "{" + t.Name() + ":" + strconv.Itoa(i) + "}"
			return locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: time.Minute, Unwatched: true}
		}
		const n = 8
		errs := make([]error, n)
		ctx, cancel := context.WithCancel(bg)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				cctx := bg
				if i%2 == 1 {
					cctx = ctx
				}
				_, errs[i] = l.Obtain(cctx, claim(i))
			})
		}
		time.Sleep(100 * time.Millisecond) // let them queue
		cancel()
		wg.Wait()
		resumed = true
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		for i, err := range errs {
			switch {
			case err == nil:
				t.Errorf("call %d: Obtain on a paused node succeeded", i)
			case i%2 == 1 && !errors.Is(err, context.Canceled):
				t.Errorf("call %d: got %v, want context.Canceled", i, err)
			case errors.Is(err, locker.ErrNotObtained):
				t.Errorf("call %d: got %v, want a timeout", i, err)
			}
		}
		// Fresh keys: a claim that was written to the paused node before its
		// caller gave up may still land there after the undo (a lease
		// without owner until its TTL; the undo is best effort).
		for i := n; i < 2*n; i++ {
			lease, err := l.Obtain(bg, claim(i))
			if err != nil {
				t.Fatalf("Obtain %d after resume: %v", i, err)
			}
			if err := lease.Release(bg); err != nil {
				t.Errorf("Release %d after resume: %v", i, err)
			}
		}
	})

	// A call's timeout counts from when it is written, not from when it was
	// queued: calls queued behind one that is stuck for its whole timeout
	// still get their replies when the node answers within their own.
	t.Run("timeout counts from the write", func(t *testing.T) {
		const timeout = time.Second
		l := mustNew(t, c, locker.Options{NodeTimeout: timeout})
		claim := func(i int) locker.Claim {
			tag := "{" + t.Name() + ":" + strconv.Itoa(i) + "}"
			return locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: time.Minute, Unwatched: true}
		}
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		resume := func() { once.Do(func() { _ = s.Resume() }) }
		t.Cleanup(resume)
		const n = 6
		errs := make([]error, n)
		leases := make([]*locker.Lease, n)
		var wg sync.WaitGroup
		start := time.Now()
		wg.Go(func() { leases[0], errs[0] = l.Obtain(bg, claim(0)) }) // written at once, stuck
		time.Sleep(100 * time.Millisecond)
		for i := 1; i < n; i++ {
			wg.Go(func() { leases[i], errs[i] = l.Obtain(bg, claim(i)) }) // queued behind it
		}
		// Resume after the first call's timeout and more than a timeout after
		// the others were queued, but well within their timeout from the
		// write that follows the first call's failure.
		time.Sleep(timeout + 400*time.Millisecond - time.Since(start))
		resume()
		wg.Wait()
		if errs[0] == nil {
			t.Errorf("call 0 (in flight while paused past its timeout): succeeded, want a timeout")
		}
		for i := 1; i < n; i++ {
			if errs[i] != nil {
				t.Errorf("call %d (queued %v before the resume): got %v, want its reply", i, timeout+300*time.Millisecond, errs[i])
				continue
			}
			if leases[i].Fence() != 1 {
				t.Errorf("call %d: fence %d, want 1", i, leases[i].Fence())
			}
			if err := leases[i].Release(bg); err != nil {
				t.Errorf("call %d: Release: %v", i, err)
			}
		}
	})
}
