package locker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
)

// cluster starts n independent redis-servers and returns them with a client
// for each.
func cluster(t *testing.T, n int, opts redistest.Options) ([]*redistest.Server, []redis.UniversalClient) {
	t.Helper()
	servers := make([]*redistest.Server, n)
	clients := make([]redis.UniversalClient, n)
	for i := range servers {
		servers[i] = redistest.Start(t, opts)
		clients[i] = servers[i].Client(t)
	}
	return servers, clients
}

func newQuorum(t *testing.T, clients []redis.UniversalClient, opts locker.Options) *locker.Locker {
	t.Helper()
	l, err := locker.NewQuorum(clients, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func kill(t *testing.T, servers ...*redistest.Server) {
	t.Helper()
	for _, s := range servers {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
}

func restart(t *testing.T, servers ...*redistest.Server) {
	t.Helper()
	for _, s := range servers {
		if err := s.Restart(); err != nil {
			t.Fatal(err)
		}
	}
}

// holders counts the nodes whose key holds token.
func holders(t *testing.T, clients []redis.UniversalClient, key, token string) int {
	t.Helper()
	n := 0
	for _, c := range clients {
		if get(t, c, key) == token {
			n++
		}
	}
	return n
}

// TestQuorumNodesKilled: a quorum of 5 works with 2 nodes killed and fails
// closed with 3, leaving no key behind on the survivors.
func TestQuorumNodesKilled(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 5, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 200 * time.Millisecond})
	key, fence := keys(t)
	const ttl = 300 * time.Millisecond

	kill(t, servers[0], servers[1])
	lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
	if n := holders(t, clients[2:], key, lease.Token()); n != 3 {
		t.Errorf("token on %d of the 3 live nodes, want 3", n)
	}
	time.Sleep(4 * ttl)
	if err := lease.Ctx().Err(); err != nil {
		t.Fatalf("lease ended with 2 of 5 nodes down: %v", context.Cause(lease.Ctx()))
	}
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := holders(t, clients[2:], key, lease.Token()); n != 0 {
		t.Errorf("token left on %d nodes after Release", n)
	}

	kill(t, servers[2])
	start := time.Now()
	_, err := l.Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, MarkKey: key + ":slot", MarkTTL: time.Minute})
	if !errors.Is(err, locker.ErrNoQuorum) {
		t.Fatalf("Obtain with 3 of 5 down: got %v, want ErrNoQuorum", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("failing Obtain took %v, want it bounded by the node timeout", took)
	}
	// The dead nodes' answers are unknown (a timeout, not a refused dial),
	// so the claim may have stood on a majority: the undo may keep the
	// mark, as SkippedAborted, but never the lease key or a running mark.
	for i, c := range clients[3:] {
		if exists(t, c, key) {
			t.Errorf("node %d keeps the lease key of a failed claim", i+3)
		}
		if m := get(t, c, key+":slot"); m != "" && m != locker.SkippedAborted {
			t.Errorf("node %d mark: got %q, want none or %q", i+3, m, locker.SkippedAborted)
		}
	}
}

// TestQuorumMinority: keys on a minority (stale ones, or the holder's own
// after losing a majority) never let a second holder in while the first
// holds a majority; losing the majority ends the lease at once.
func TestQuorumMinority(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 5, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 200 * time.Millisecond})
	const ttl = 300 * time.Millisecond

	t.Run("stale keys on 2 nodes", func(t *testing.T) {
		key, fence := keys(t)
		for _, c := range clients[:2] {
			c.Set(bg, key, "stale", time.Minute)
		}
		first := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
		tries := 0
		for stop := time.Now().Add(4 * ttl); time.Now().Before(stop); tries++ {
			second, err := l.Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, Unwatched: true})
			if err == nil {
				_ = second.Release(bg)
				t.Fatalf("second holder got in on try %d while the first holds %d nodes", tries, holders(t, clients, key, first.Token()))
			}
			if !errors.Is(err, locker.ErrNotObtained) {
				t.Fatalf("second Obtain: got %v, want ErrNotObtained", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := first.Ctx().Err(); err != nil {
			t.Fatalf("first lease ended: %v", context.Cause(first.Ctx()))
		}
		if err := first.Release(bg); err != nil {
			t.Fatalf("Release: %v", err)
		}
		second := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
		if second.Fence() <= first.Fence() {
			t.Errorf("second fence %d, want > first %d", second.Fence(), first.Fence())
		}
	})

	for _, tc := range []struct {
		deleted  int
		wantLost bool
	}{{2, false}, {3, true}} {
		t.Run("key deleted on "+string(rune('0'+tc.deleted))+" nodes", func(t *testing.T) {
			key, fence := keys(t)
			lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
			time.Sleep(50 * time.Millisecond) // let straggling claims land
			for _, c := range clients[:tc.deleted] {
				c.Del(bg, key)
			}
			if !tc.wantLost {
				time.Sleep(3 * ttl)
				if err := lease.Ctx().Err(); err != nil {
					t.Fatalf("lease ended with its key on 3 of 5 nodes: %v", context.Cause(lease.Ctx()))
				}
				return
			}
			if took := waitDone(t, lease, 2*time.Second); took > ttl/3+150*time.Millisecond {
				t.Errorf("lease lost after %v, want within TTL/3 + 150ms", took)
			}
			if got := context.Cause(lease.Ctx()); got != locker.ErrLeaseLost {
				t.Errorf("cause: got %v, want %v", got, locker.ErrLeaseLost)
			}
		})
	}
}

// TestQuorumPausedNode: with one of 5 nodes stopped, Obtain still succeeds
// quickly through the majority and the lease is renewed.
func TestQuorumPausedNode(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 5, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{NodeTimeout: time.Second})
	key, fence := keys(t)
	if err := servers[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = servers[0].Resume() })
	const ttl = 500 * time.Millisecond
	start := time.Now()
	lease := mustObtain(t, l, locker.Claim{Key: key, FenceKey: fence, TTL: ttl})
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("Obtain took %v with one node paused, want the majority's pace, far below the 1s node timeout", took)
	}
	if left := time.Until(lease.Deadline()); left < ttl-300*time.Millisecond {
		t.Errorf("validity left %v, want about TTL %v", left, ttl)
	}
	time.Sleep(4 * ttl)
	if err := lease.Ctx().Err(); err != nil {
		t.Fatalf("lease ended with one node paused: %v", context.Cause(lease.Ctx()))
	}
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// TestQuorumValidity: when the majority is reached only after the TTL (of 3
// nodes, one is held by another token and one is stopped and resumed
// later), the validity check rejects the claim and undoes it, keeping the
// slot's mark as SkippedAborted.
func TestQuorumValidity(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 3, redistest.Options{})
	const ttl = 200 * time.Millisecond
	const hold = 2 * ttl
	// A node timeout well beyond the TTL, so the slow node's answer counts.
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 3 * time.Second})
	key, fence := keys(t)
	clients[2].Set(bg, key, "other", time.Minute)
	if err := servers[1].Pause(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(hold)
		_ = servers[1].Resume()
	}()
	start := time.Now()
	_, err := l.Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: ttl, MarkKey: key + ":slot", MarkTTL: time.Minute})
	took := time.Since(start)
	wg.Wait()
	if !errors.Is(err, locker.ErrNoQuorum) || !strings.Contains(err.Error(), "validity") {
		t.Fatalf("Obtain: got %v, want ErrNoQuorum for used-up validity", err)
	}
	if took < hold || took > 2*time.Second {
		t.Errorf("Obtain took %v, want about %v (the paused node's answer)", took, hold)
	}
	// The claim did win a majority, only too late: others may have seen its
	// marks and given the slot up, so the undo keeps the slot claimed, on
	// record as SkippedAborted, and frees the lease key.
	for i, c := range clients[:2] {
		if exists(t, c, key) {
			t.Errorf("node %d keeps the lease key of a rejected claim", i)
		}
		if got := get(t, c, key+":slot"); got != locker.SkippedAborted {
			t.Errorf("node %d mark: got %q, want %q", i, got, locker.SkippedAborted)
		}
	}
	if got := get(t, clients[2], key); got != "other" {
		t.Errorf("node 2 key: got %q, want the other holder's untouched", got)
	}
}

// TestQuorumFence checks NewQuorum's promise: for leases whose Obtain calls
// do not overlap, the later fence is strictly greater, as long as a node in
// both majorities keeps its counter (AOF appendfsync always: across
// restarts too), whichever 2 of 5 nodes are down.
func TestQuorumFence(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 5, redistest.Options{AOF: true})
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 200 * time.Millisecond})
	key, fence := keys(t)
	claim := locker.Claim{Key: key, FenceKey: fence, TTL: time.Second, Unwatched: true}
	var last int64
	take := func(step string) int64 {
		t.Helper()
		lease := mustObtain(t, l, claim)
		if lease.Fence() <= last {
			t.Fatalf("%s: fence %d after %d, want strictly greater", step, lease.Fence(), last)
		}
		last = lease.Fence()
		if err := lease.Release(bg); err != nil {
			t.Fatalf("%s: Release: %v", step, err)
		}
		return last
	}

	// Every pair of nodes down in turn, restarted (AOF) before the next.
	for i := range servers {
		down := []*redistest.Server{servers[i], servers[(i+2)%5]}
		kill(t, down...)
		take("down " + string(rune('0'+i)))
		restart(t, down...)
	}

	// The write-back is what carries a high counter across majorities: node
	// 0 alone is far ahead; a claim on {0,1,2} must raise {1,2} too, so that
	// a later claim on {2,3,4} (after node 2 restarted) is above it.
	if err := clients[0].Set(bg, fence, 100, 0).Err(); err != nil {
		t.Fatal(err)
	}
	kill(t, servers[3], servers[4])
	if f := take("majority {0,1,2}"); f != 101 {
		t.Fatalf("fence on {0,1,2}: got %d, want 101 (node 0's counter + 1)", f)
	}
	restart(t, servers[3], servers[4], servers[2])
	kill(t, servers[0], servers[1])
	take("majority {2,3,4}")
}

// TestQuorumMarks: marks, busy records and history are written on each node.
func TestQuorumMarks(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{})
	key, fence := keys(t)
	mark, hist := key+":slot", key+":history"
	claim := locker.Claim{Key: key, FenceKey: fence, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute, HistoryKey: hist, HistoryLen: 5, HistoryTTL: time.Hour}

	lease := mustObtain(t, l, claim)
	if err := lease.Finish(bg, "done:ok", time.Minute); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for i, c := range clients {
		if got := get(t, c, mark); got != "done:ok" {
			t.Errorf("node %d mark: got %q, want done:ok", i, got)
		}
		if got, _ := c.LRange(bg, hist, 0, -1).Result(); len(got) != 1 || got[0] != "done:ok" {
			t.Errorf("node %d history: got %q", i, got)
		}
	}
	_, err := l.Obtain(bg, claim)
	var noe *locker.NotObtainedError
	if !errors.As(err, &noe) || noe.Reason != locker.ErrSlotClaimed || noe.Record != "done:ok" {
		t.Fatalf("Obtain of a finished slot: got %v, want ErrSlotClaimed with the record", err)
	}

	// A mark on one node only (a minority) does not block the slot.
	claim.MarkKey = key + ":slot2"
	clients[0].Set(bg, claim.MarkKey, "stale", time.Minute)
	lease = mustObtain(t, l, claim)
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// TestQuorumContention: a short contention run over a quorum of 3.
func TestQuorumContention(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	key, fence := keys(t)
	var lockers [3]*locker.Locker
	for i := range lockers {
		lockers[i] = newQuorum(t, clients, locker.Options{})
	}
	var (
		inside, overlaps atomic.Int32
		mu               sync.Mutex
		fences           []int64
		wg               sync.WaitGroup
	)
	stop := time.Now().Add(1500 * time.Millisecond)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				lease, err := lockers[g%3].Obtain(bg, locker.Claim{Key: key, FenceKey: fence, TTL: time.Second})
				if err != nil {
					if !errors.Is(err, locker.ErrNotObtained) && !errors.Is(err, locker.ErrNoQuorum) {
						t.Errorf("Obtain: %v", err)
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				mu.Lock()
				fences = append(fences, lease.Fence())
				mu.Unlock()
				inside.Add(-1)
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
	if len(fences) < 20 {
		t.Errorf("got %d acquisitions, want at least 20", len(fences))
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence %d after %d: want strictly increasing", fences[i], fences[i-1])
		}
	}
}
