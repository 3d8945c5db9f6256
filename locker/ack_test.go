package locker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// ackLocker is a locker on master that waits for n replica acknowledgements
// of each claim, at most timeout.
func ackLocker(t *testing.T, master *redistest.Server, n int, timeout time.Duration) *locker.Locker {
	t.Helper()
	l, err := locker.New(newClient(t, master), locker.Options{MinReplicasAck: n, AckTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// onReplica says whether the replica holds key now (no waiting: an
// acknowledged claim must be there when Obtain returns).
func onReplica(t *testing.T, r *redistest.Server, key string) bool {
	t.Helper()
	n, err := r.Client(t).Exists(bg, key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s on the replica: %v", key, err)
	}
	return n == 1
}

// TestAckedClaimIsOnTheReplica: with MinReplicasAck 1, a claim that
// Obtain returns is already on the replica, alone, in a batch of
// concurrent claims, and after SCRIPT FLUSH (the EVAL fallback runs on
// another connection than the EVALSHA it replaces).
func TestAckedClaimIsOnTheReplica(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	// The replica lags 30ms behind: without WAIT, the claim would not be
	// there when Obtain returns.
	p := redistest.StartProxy(t, master.Addr())
	replica := redistest.StartReplica(t, p.Addr(), redistest.Options{})
	p.Delay(redistest.ToClient, 30*time.Millisecond)
	l := ackLocker(t, master, 1, 2*time.Second)

	t.Run("one claim", func(t *testing.T) {
		key, meta := keys(t)
		slot := time.Now().Truncate(time.Second)
		lease := mustObtain(t, l, slotClaim(key, meta, slot))
		defer lease.Release(bg)
		for _, k := range []string{key, meta, markOf(key, slot)} {
			if !onReplica(t, replica, k) {
				t.Errorf("%s: not on the replica when Obtain returned", k)
			}
		}
	})
	t.Run("a batch of concurrent claims", func(t *testing.T) {
		const n = 32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		slot := time.Now().Truncate(time.Second)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key, meta := fmt.Sprintf("redcron:{ack%d}:lease", i), fmt.Sprintf("redcron:{ack%d}:meta", i)
				lease, err := l.Obtain(bg, slotClaim(key, meta, slot))
				if err != nil {
					errs <- err
					return
				}
				defer lease.Release(bg)
				if !onReplica(t, replica, markOf(key, slot)) {
					errs <- fmt.Errorf("claim %d: mark not on the replica when Obtain returned", i)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
	t.Run("after SCRIPT FLUSH", func(t *testing.T) {
		if err := master.Client(t).ScriptFlush(bg).Err(); err != nil {
			t.Fatal(err)
		}
		key, meta := keys(t)
		slot := time.Now().Truncate(time.Second)
		lease := mustObtain(t, l, slotClaim(key, meta, slot))
		defer lease.Release(bg)
		if !onReplica(t, replica, markOf(key, slot)) {
			t.Errorf("mark not on the replica when Obtain returned")
		}
	})
}

// TestNotAcked: without enough replicas a claim that won on the master
// fails with ErrNotAcked, not as a refusal by state; its Bid, retried as
// itself once a replica is there, wins (with a new fence: the next slot's
// claim took a number since); Locker.Obtain withdraws a claim it could not
// get acknowledged.
func TestNotAcked(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	const timeout = 100 * time.Millisecond
	l := ackLocker(t, master, 1, timeout)
	c := master.Client(t)

	key, meta := keys(t)
	slot := time.Now().Truncate(time.Second)
	bid, err := l.Bid(slotClaim(key, meta, slot))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = bid.Obtain(bg)
	var ne *locker.NotObtainedError
	switch {
	case !errors.Is(err, locker.ErrNotAcked):
		t.Fatalf("Obtain with no replica: got %v, want ErrNotAcked", err)
	case errors.As(err, &ne):
		t.Fatalf("Obtain with no replica: got a refusal by state %v, want a claim that may have won", err)
	case time.Since(start) < timeout:
		t.Errorf("Obtain returned after %v, want at least the ack timeout %v", time.Since(start), timeout)
	}
	fence, err := c.HGet(bg, meta, "fence").Int64()
	if err != nil || fence != 1 {
		t.Fatalf("fence on the master: got %d, %v; want 1 (the claim won there)", fence, err)
	}
	if n, _ := c.Exists(bg, key).Result(); n != 0 {
		t.Errorf("lease key held after a claim that was not acknowledged: the next slots would find the job busy")
	}
	if tok, _ := c.HGet(bg, markOf(key, slot), "token").Result(); tok != bid.Token() {
		t.Errorf("mark's token: got %q, want the bid's %q (the slot stays claimed by it)", tok, bid.Token())
	}
	// The job's next slot is not refused as overlapping (the lease is free);
	// it is not acknowledged either.
	if _, err := l.Obtain(bg, slotClaim(key, meta, slot.Add(time.Second))); !errors.Is(err, locker.ErrNotAcked) {
		t.Errorf("the next slot's claim: got %v, want ErrNotAcked, not a busy lease", err)
	}

	redistest.StartReplica(t, master.Addr(), redistest.Options{})
	lease, err := bid.Obtain(bg)
	if err != nil {
		t.Fatalf("the same bid once a replica is up: %v", err)
	}
	if lease.Fence() != 3 {
		t.Errorf("fence: got %d, want 3 (retried as itself, above the 2 that the next slot's claim took since)", lease.Fence())
	}
	if err := lease.Release(bg); err != nil {
		t.Fatal(err)
	}

	t.Run("Locker.Obtain withdraws", func(t *testing.T) {
		lone := redistest.Start(t, redistest.Options{})
		l := ackLocker(t, lone, 1, timeout)
		key, meta := keys(t)
		if _, err := l.Obtain(bg, slotClaim(key, meta, slot)); !errors.Is(err, locker.ErrNotAcked) {
			t.Fatalf("got %v, want ErrNotAcked", err)
		}
		lc := lone.Client(t)
		if n, _ := lc.Exists(bg, key).Result(); n != 0 {
			t.Errorf("lease key still held after a claim that was not acknowledged")
		}
		if got, _ := lc.HGet(bg, markOf(key, slot), "end").Result(); got != recs.Aborted {
			t.Errorf("mark's end: got %q, want %q (the claim may have won: on record)", got, recs.Aborted)
		}
	})
}

// TestAckRefused: WAIT cannot follow a claim through a Cluster client or
// over several masters.
func TestAckRefused(t *testing.T) {
	opts := locker.Options{MinReplicasAck: 1}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer cc.Close()
	if _, err := locker.New(cc, opts); !errors.Is(err, locker.ErrInvalid) {
		t.Errorf("New(cluster client, MinReplicasAck 1): got %v, want ErrInvalid", err)
	}
	srv := redistest.Start(t, redistest.Options{})
	cs := []locker.Client{newClient(t, srv), newClient(t, srv), newClient(t, srv)}
	if _, err := locker.NewQuorum(cs, opts); !errors.Is(err, locker.ErrInvalid) {
		t.Errorf("NewQuorum(3 clients, MinReplicasAck 1): got %v, want ErrInvalid", err)
	}
	if _, err := locker.NewQuorum(cs[:1], opts); err != nil {
		t.Errorf("NewQuorum(1 client, MinReplicasAck 1): got %v, want nil (one node)", err)
	}
}

// TestNotAckedBeforeTheDeadline: a claim whose context ends before the
// ack timeout gets its WAIT shortened, and so the count of replicas (too
// few) rather than a timeout on the socket.
func TestNotAckedBeforeTheDeadline(t *testing.T) {
	lone := redistest.Start(t, redistest.Options{})
	l := ackLocker(t, lone, 1, 10*time.Second)
	key, meta := keys(t)
	// Load the script first: after NOSCRIPT the claim is sent again, and
	// the first WAIT's time is lost.
	warm, wcancel := context.WithTimeout(bg, time.Second)
	_, _ = l.Obtain(warm, slotClaim(key+":warm", meta+":warm", time.Now().Truncate(time.Second)))
	wcancel()
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Obtain(ctx, slotClaim(key, meta, time.Now().Truncate(time.Second)))
	if !errors.Is(err, locker.ErrNotAcked) || strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want ErrNotAcked and no timeout", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("Obtain took %v, want it to end with its context (300ms)", d)
	}
}
