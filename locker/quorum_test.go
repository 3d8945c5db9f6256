package locker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
func cluster(t *testing.T, n int, opts redistest.Options) ([]*redistest.Server, []*redis.Client) {
	t.Helper()
	servers := make([]*redistest.Server, n)
	clients := make([]*redis.Client, n)
	for i := range servers {
		servers[i] = redistest.Start(t, opts)
		clients[i] = newClient(t, servers[i])
	}
	return servers, clients
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
func holders(t *testing.T, clients []*redis.Client, key, token string) int {
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
// closed with 3, leaving no lease key and no running mark behind on the
// survivors.
func TestQuorumNodesKilled(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 5, redistest.Options{})
	const nodeTimeout = 500 * time.Millisecond
	l := newQuorum(t, clients, locker.Options{NodeTimeout: nodeTimeout})
	key, meta := keys(t)
	const ttl = 500 * time.Millisecond

	kill(t, servers[0], servers[1])
	lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
	time.Sleep(50 * time.Millisecond) // let straggling claims land
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
	mark := key + ":slot"
	err := tryObtain(l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl,
		MarkKey: mark, MarkTTL: time.Minute, Retention: time.Hour, Running: "running", Records: recs})
	if !errors.Is(err, locker.ErrNoQuorum) {
		t.Fatalf("Obtain with 3 of 5 down: got %v, want ErrNoQuorum", err)
	}
	// The claim, the undo of a lost vote and the withdrawal each wait one
	// node timeout at most.
	if took := time.Since(start); took > 3*nodeTimeout+500*time.Millisecond {
		t.Errorf("failing Obtain took %v, want it bounded by the node timeout (%v each round)", took, nodeTimeout)
	}
	// A dead node's answer may be unknown (a write on a dead connection,
	// not a refused dial), so the claim may have stood on a majority: the
	// undo may keep the mark, ended with Records.Aborted, but never the
	// lease key or a running mark.
	for i, c := range clients[3:] {
		if exists(t, c, key) {
			t.Errorf("node %d keeps the lease key of a failed claim", i+3)
		}
		if m := hgetall(t, c, mark); len(m) != 0 && m["end"] != recs.Aborted {
			t.Errorf("node %d mark: got %v, want none or ended with %q", i+3, m, recs.Aborted)
		}
	}
}

// TestQuorumMinority: keys on a minority (stale ones, or the holder's own
// after losing a majority) never let a second holder in while the first
// holds a majority; losing the majority ends the lease within TTL/3.
func TestQuorumMinority(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 5, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 500 * time.Millisecond})
	const ttl = 900 * time.Millisecond
	const margin = 300 * time.Millisecond

	t.Run("stale keys on 2 nodes", func(t *testing.T) {
		key, meta := keys(t)
		for _, c := range clients[:2] {
			must(t, c.Set(bg, key, "stale", time.Minute).Err())
		}
		first := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
		tries := 0
		for stop := time.Now().Add(3 * ttl); time.Now().Before(stop); tries++ {
			second, err := l.Obtain(bg, locker.Claim{Key: key, MetaKey: meta, TTL: ttl, Unwatched: true})
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
		if got := holders(t, clients, key, "stale"); got != 2 {
			t.Errorf("stale keys after Release: got %d, want the 2 untouched", got)
		}
		for _, c := range clients[:2] {
			must(t, c.Del(bg, key).Err())
		}
		second := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
		if second.Fence() <= first.Fence() {
			t.Errorf("second fence %d, want > first %d", second.Fence(), first.Fence())
		}
	})

	for _, tc := range []struct {
		deleted  int
		wantLost bool
	}{{2, false}, {3, true}} {
		t.Run("key deleted on "+strconv.Itoa(tc.deleted)+" nodes", func(t *testing.T) {
			key, meta := keys(t)
			lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
			// Obtain returns with a majority; the stragglers' claims land
			// before the deletes, or one could write the key back after.
			waitFor(t, 2*time.Second, func() bool { return holders(t, clients, key, lease.Token()) == len(clients) })
			for _, c := range clients[:tc.deleted] {
				must(t, c.Del(bg, key).Err())
			}
			if !tc.wantLost {
				time.Sleep(3 * ttl)
				if err := lease.Ctx().Err(); err != nil {
					t.Fatalf("lease ended with its key on 3 of 5 nodes: %v", context.Cause(lease.Ctx()))
				}
				return
			}
			if took := waitDone(t, lease, 3*ttl); took > ttl/3+margin {
				t.Errorf("lease lost after %v, want within TTL/3 + %v = %v", took, margin, ttl/3+margin)
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
	key, meta := keys(t)
	if err := servers[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = servers[0].Resume() })
	const ttl = 600 * time.Millisecond
	start := time.Now()
	lease := mustObtain(t, l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Obtain took %v with one node paused, want the majority's pace, far below the 1s node timeout", took)
	}
	if left := time.Until(lease.Deadline()); left < ttl-400*time.Millisecond {
		t.Errorf("validity left %v, want about TTL %v", left, ttl)
	}
	time.Sleep(4 * ttl)
	if err := lease.Ctx().Err(); err != nil {
		t.Fatalf("lease ended with one node paused: %v", context.Cause(lease.Ctx()))
	}
	if n := holders(t, clients[1:], key, lease.Token()); n != 4 {
		t.Errorf("token on %d of the 4 running nodes, want 4", n)
	}
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if n := holders(t, clients[1:], key, lease.Token()); n != 0 {
		t.Errorf("token left on %d running nodes after Release", n)
	}
}

// TestQuorumValidity: when the majority is reached only after the TTL (of 3
// nodes, one is held by another token and one is stopped and resumed
// later), the validity check rejects the claim (ErrNoQuorum, ErrTooLate)
// and withdraws it, keeping the slot's marks ended with Records.Aborted.
func TestQuorumValidity(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 3, redistest.Options{})
	const ttl = 200 * time.Millisecond
	const hold = 2 * ttl
	// A node timeout well beyond the TTL, so the slow node's answer counts.
	l := newQuorum(t, clients, locker.Options{NodeTimeout: 3 * time.Second})
	key, meta := keys(t)
	mark := key + ":slot"
	must(t, clients[2].Set(bg, key, "other", time.Minute).Err())
	if err := servers[1].Pause(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(hold)
		_ = servers[1].Resume()
	})
	t.Cleanup(wg.Wait)
	start := time.Now()
	r := recs
	r.Busy = "" // node 2 refuses without a record
	err := tryObtain(l, locker.Claim{Key: key, MetaKey: meta, TTL: ttl,
		MarkKey: mark, MarkTTL: time.Minute, Retention: time.Hour, Running: "running", Records: r})
	took := time.Since(start)
	wg.Wait()
	if !errors.Is(err, locker.ErrNoQuorum) || !errors.Is(err, locker.ErrTooLate) {
		t.Fatalf("Obtain: got %v, want ErrNoQuorum and ErrTooLate for used-up validity", err)
	}
	if took < hold || took > 2*time.Second {
		t.Errorf("Obtain took %v, want about %v (the paused node's answer)", took, hold)
	}
	// The claim did win a majority, only too late: others may have seen its
	// marks and given the slot up, so the withdrawal keeps the slot claimed,
	// on record as Aborted, and frees the lease key.
	token := hget(t, clients[0], mark, "token")
	for i, c := range clients[:2] {
		if exists(t, c, key) {
			t.Errorf("node %d keeps the lease key of a rejected claim", i)
		}
		abortedMark(t, c, mark, token, "1")
	}
	if got := get(t, clients[2], key); got != "other" {
		t.Errorf("node 2 key: got %q, want the other holder's untouched", got)
	}
	if exists(t, clients[2], mark) {
		t.Errorf("node 2 mark: got %v, want none (busy, no Busy record)", hgetall(t, clients[2], mark))
	}
}

// TestQuorumFence checks NewQuorum's promise: for leases whose Obtain calls
// do not overlap, the later fence is strictly greater, as long as a node in
// both majorities keeps its counter (AOF appendfsync always: across
// restarts too), whichever 2 of 5 nodes are down.
func TestQuorumFence(t *testing.T) {
	t.Parallel()
	servers, clients := cluster(t, 5, redistest.Options{AOF: true})
	// appendfsync always on 5 nodes of a busy machine: give each call time
	// (200ms was seen to be too short under the suite's load).
	l := newQuorum(t, clients, locker.Options{NodeTimeout: time.Second})
	key, meta := keys(t)
	claim := locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, Unwatched: true}
	var last int64
	// take obtains the lease, calls held (if any) while it is held, and
	// releases it.
	take := func(step string, held func()) int64 {
		t.Helper()
		lease := mustObtain(t, l, claim)
		if lease.Fence() <= last {
			t.Fatalf("%s: fence %d after %d, want strictly greater", step, lease.Fence(), last)
		}
		last = lease.Fence()
		if held != nil {
			held()
		}
		if err := lease.Release(bg); err != nil {
			t.Fatalf("%s: Release: %v", step, err)
		}
		return last
	}

	// Every pair of nodes down in turn, restarted (AOF) before the next.
	for i := range servers {
		down := []*redistest.Server{servers[i], servers[(i+2)%5]}
		kill(t, down...)
		take("down "+strconv.Itoa(i)+","+strconv.Itoa((i+2)%5), nil)
		restart(t, down...)
	}

	// The write-back is what carries a high counter across majorities: node
	// 0 alone is far ahead; a claim on {0,1,2} must raise {1,2} too, so that
	// a later claim on {2,3,4} (after node 2 restarted) is above it.
	must(t, clients[0].HSet(bg, meta, "fence", 100).Err())
	kill(t, servers[3], servers[4])
	// Checked while the lease is held: its Release raises them too.
	f := take("majority {0,1,2}", func() {
		for i, c := range clients[:3] {
			if got := hget(t, c, meta, "fence"); got != "101" {
				t.Errorf("node %d fence after the write-back: got %q, want 101", i, got)
			}
		}
	})
	if f != 101 {
		t.Fatalf("fence on {0,1,2}: got %d, want 101 (node 0's counter + 1)", f)
	}
	restart(t, servers[3], servers[4], servers[2])
	kill(t, servers[0], servers[1])
	take("majority {2,3,4}", nil)
}

// twoReplicas are three masters, each with a direct client and two
// replicas' clients through proxies of their own (A's and B's), and each
// replica's quorum locker, connected and its scripts loaded.
type twoReplicas struct {
	direct, viaA, viaB []*redis.Client
	pa, pb             []*redistest.Proxy
	qa, qb             *locker.Locker
}

// newTwoReplicas starts them, with the job's fence counters at fences, its
// high-water the second before slot and its first sight an hour before.
func newTwoReplicas(t *testing.T, key, meta string, slot time.Time, fences [3]int) twoReplicas {
	t.Helper()
	r := twoReplicas{direct: make([]*redis.Client, 3), viaA: make([]*redis.Client, 3), viaB: make([]*redis.Client, 3),
		pa: make([]*redistest.Proxy, 3), pb: make([]*redistest.Proxy, 3)}
	for i := range r.direct {
		s := redistest.Start(t, redistest.Options{})
		r.direct[i] = newClient(t, s)
		r.viaA[i], r.pa[i] = viaProxy(t, s)
		r.viaB[i], r.pb[i] = viaProxy(t, s)
		must(t, r.direct[i].HSet(bg, meta, "fence", fences[i], "hw", unix(slot.Add(-time.Second)), "first", unix(slot.Add(-time.Hour))).Err())
	}
	opts := locker.Options{NodeTimeout: 5 * time.Second}
	r.qa, r.qb = newQuorum(t, r.viaA, opts), newQuorum(t, r.viaB, opts)
	for i, q := range []*locker.Locker{r.qa, r.qb} {
		warm := slotClaim(key+"-warm"+strconv.Itoa(i), meta+"-warm"+strconv.Itoa(i), slot)
		warm.Unwatched = true
		must(t, mustObtain(t, q, warm).Release(bg))
	}
	return r
}

// isFenceWrite says whether cmd is fence.lua's write-back:
// evalsha sha 2 meta-key lease-key "meta,lease" "fence" f "token" t.
func isFenceWrite(cmd redis.Cmder) bool {
	args := cmd.Args()
	for i := 3; i+1 < len(args); i++ {
		if fmt.Sprint(args[i]) == "meta,lease" && fmt.Sprint(args[i+1]) == "fence" {
			return true
		}
	}
	return false
}

// obtained is what an Obtain returned.
type obtained struct {
	lease *locker.Lease
	err   error
}

// awaitObtained waits up to 10s for what's Obtain and returns its lease,
// failing the test on an error.
func awaitObtained(t *testing.T, ch <-chan obtained, what string) *locker.Lease {
	t.Helper()
	select {
	case o := <-ch:
		if o.err != nil {
			t.Fatalf("%s: %v", what, o.err)
		}
		return o.lease
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10s", what)
	}
	return nil
}

// TestQuorumFenceOverlap: a claim of the next slot, sent while this
// slot's claim is on its way, runs after this slot's lease ended or
// expired and must take a greater fence. Replica A claims slot s: node 0
// refuses it (busy with the slot before), nodes 1 and 2 grant it at
// counters 15 and 16, so its fence is 16 and the write-back goes to nodes
// 0 and 1. Before it reaches node 0, the slot before ends there and
// replica B's claim of s+1 takes node 0's next number; the write-back to
// node 1 is cut. B's claim reaches node 1 only after A's lease ended or
// expired there (the schedbench quorum suite's fence regressions: equal
// fences on consecutive slots).
//   - Lease ends: node 0 is at 14, so B takes 15 there and A's write-back
//     raises it to 16, a majority with node 2. Before Finish raised the
//     counters, B then took 16 on node 1 and ran with fence 16 after A.
//   - Lease expires: node 0 is at 15, so B takes 16 there, A's own number.
//     Before the write-back counted only its own raises, A ran with 16
//     (node 0 "acknowledged" 16), and B took 16 on node 1 once A's lease
//     expired; now A is refused, with too few raises.
func TestQuorumFenceOverlap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		node0   int  // node 0's counter before B's claim
		expires bool // A's lease expires instead of ending with Finish
	}{
		{"lease ends", 14, false},
		{"lease expires", 15, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slot := time.Now().Truncate(time.Second).Add(-time.Minute)
			key, meta := keys(t)
			r := newTwoReplicas(t, key, meta, slot, [3]int{tc.node0, 14, 15})
			direct, viaA, pa, pb, qa, qb := r.direct, r.viaA, r.pa, r.pb, r.qa, r.qb
			// The slot before holds node 0's lease.
			must(t, direct[0].Set(bg, key, "slot-before", time.Minute).Err())

			next := slotClaim(key, meta, slot.Add(time.Second))
			next.Unwatched, next.TTL = true, 10*time.Second
			bBid, err := qb.Bid(next)
			if err != nil {
				t.Fatal(err)
			}
			bDone := make(chan obtained, 1)
			var armed0, armed1 atomic.Bool
			armed0.Store(true)
			armed1.Store(true)
			viaA[0].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
				if !isFenceWrite(cmd) || !armed0.CompareAndSwap(true, false) {
					return
				}
				// The slot before ends on node 0; B's claim of s+1 is
				// sent, and reaches node 0 only (its call to node 1 is
				// held on the way, node 2 refuses B's connections).
				// (On the flusher's goroutine: errors, not t.Fatal.)
				if err := direct[0].Del(bg, key).Err(); err != nil {
					t.Error(err)
				}
				pb[1].Hold(redistest.ToServer)
				pb[2].Block(true)
				go func() {
					lease, err := bBid.Obtain(bg)
					bDone <- obtained{lease, err}
				}()
				for n := 0; direct[0].Get(bg, key).Val() != bBid.Token(); n++ {
					if n == 500 {
						t.Error("B's claim did not take node 0 within 5s")
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}))
			viaA[1].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
				if isFenceWrite(cmd) && armed1.CompareAndSwap(true, false) {
					pa[1].Block(true) // the write-back to node 1 is lost
				}
			}))

			claim := slotClaim(key, meta, slot)
			claim.Unwatched, claim.TTL = true, 10*time.Second
			if tc.expires {
				claim.TTL = 2 * time.Second
			}
			a, err := qa.Obtain(bg, claim)
			if armed0.Load() || armed1.Load() {
				t.Fatalf("A's claim wrote its fence back to node 0: %v, node 1: %v; want both (its error %v)", !armed0.Load(), !armed1.Load(), err)
			}
			if got := hget(t, direct[1], meta, "fence"); got != "15" {
				t.Fatalf("node 1's counter after the write-back was cut: got %s, want 15 (A's claim)", got)
			}
			pa[1].Block(false)
			switch {
			case tc.expires:
				// Node 0's counter stood at 16 by B's claim, not by A's
				// write-back: A is refused (before, it ran with 16).
				if !errors.Is(err, locker.ErrNoQuorum) || !strings.Contains(err.Error(), "fence 16 on 1 of 3 nodes by this claim") {
					t.Fatalf("A's claim: got %v, want ErrNoQuorum from its write-back of 16", err)
				}
				// Its claim is kept where it may have won: it holds node 1
				// until its lease there expires.
				waitFor(t, 5*time.Second, func() bool { return direct[1].Exists(bg, key).Val() == 0 })
			case err != nil:
				t.Fatalf("A's claim: %v", err)
			case a.Fence() != 16:
				t.Fatalf("A's fence: got %d, want 16 (node 2's counter + 1)", a.Fence())
			default:
				if err := a.Finish(bg, "ok"); err != nil {
					t.Fatalf("A's Finish: %v", err)
				}
			}
			pb[1].Release(redistest.ToServer) // B's claim reaches node 1 now
			// B's call to node 1 may have been held past its read timeout
			// (when A's claim waited for its lease to expire, always): then
			// the claim is retried as itself, as the scheduler does, its
			// number on node 0 kept.
			var o obtained
			select {
			case o = <-bDone:
			case <-time.After(10 * time.Second):
				t.Fatal("B's claim did not return within 10s")
			}
			b := o.lease
			if o.err != nil {
				go func() {
					lease, err := bBid.Obtain(bg)
					bDone <- obtained{lease, err}
				}()
				b = awaitObtained(t, bDone, "B's claim, retried")
			}
			if a != nil && b.Fence() <= a.Fence() {
				t.Errorf("B's fence for the next slot, obtained after A's lease ended: got %d, want above A's %d", b.Fence(), a.Fence())
			}
			pb[2].Block(false)
			must(t, b.Release(bg))
		})
	}
}

// fenceNodes are three proxied nodes and a quorum locker over them, for
// a slot claim (TTL 10s) of key/meta, made by claim.
type fenceNodes struct {
	proxies         []*redistest.Proxy
	clients, direct []*redis.Client
	l               *locker.Locker
	key, meta       string
	claim           func(key, meta string) locker.Claim
}

// newFenceNodes starts them, with replies read within read, the job's
// fence counters at fences (a warm-up job's too), and node blocked (if
// not -1) refusing connections; a warm-up claim has connected the locker
// and loaded its scripts (fence.lua where a write-back went).
func newFenceNodes(t *testing.T, read time.Duration, fences [3]int, blocked int) fenceNodes {
	t.Helper()
	x := fenceNodes{}
	x.proxies, x.clients, x.direct = proxiedNodes(t, read)
	x.key, x.meta = keys(t)
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	x.claim = func(key, meta string) locker.Claim {
		c := slotClaim(key, meta, slot)
		c.Unwatched, c.TTL = true, 10*time.Second
		return c
	}
	for i, f := range fences {
		for _, m := range []string{x.meta, x.meta + "-warm"} {
			must(t, x.direct[i].HSet(bg, m, "fence", f, "hw", unix(slot.Add(-time.Second)), "first", unix(slot.Add(-time.Hour))).Err())
		}
	}
	x.l = newQuorum(t, x.clients, locker.Options{NodeTimeout: 5 * time.Second})
	if blocked >= 0 {
		x.proxies[blocked].Block(true)
	}
	must(t, mustObtain(t, x.l, x.claim(x.key+"-warm", x.meta+"-warm")).Release(bg))
	return x
}

// TestQuorumFenceRetried: a claim whose write-back raised a counter but
// lost the reply is retried as itself. Node 1 refuses connections during
// the first attempt, which wins on nodes 0 and 2 at counters 10 and 5: the
// fence is 11, written back to node 2 (and node 1), whose reply is cut
// after the raise.
//   - Same majority: the retry wins on nodes 0 and 2 again, and its
//     write-back counts node 2, raised by its first attempt, where it
//     holds the lease.
//   - Other majority: node 0 refuses connections during the retry, which
//     wins on nodes 1 and 2. Node 2's mark holds 6, its counter 11 by the
//     claim's own raise (fence.lua notes who raised a counter to which
//     number): the retry takes 11 there, the number it wrote back.
//     Before (found by review), it won with 6, below the 11 it had
//     written back: below the fence of a run started between the
//     attempts once its leases expired.
func TestQuorumFenceRetried(t *testing.T) {
	t.Parallel()
	for _, other := range []bool{false, true} {
		name := "same majority"
		if other {
			name = "other majority"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Connected, and fence.lua loaded on node 2, before its reply
			// is held (else the held reply is NOSCRIPT, and nothing is
			// raised).
			x := newFenceNodes(t, time.Second, [3]int{10, 5, 5}, 1)
			proxies, clients, direct, l, key, meta, claim := x.proxies, x.clients, x.direct, x.l, x.key, x.meta, x.claim
			var armed atomic.Bool
			armed.Store(true)
			clients[2].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
				if isFenceWrite(cmd) && armed.CompareAndSwap(true, false) {
					proxies[2].Hold(redistest.ToClient) // the raise lands, its reply does not
				}
			}))
			bid, err := l.Bid(claim(key, meta))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan obtained, 1)
			go func() {
				lease, err := bid.Obtain(bg)
				done <- obtained{lease, err}
			}()
			waitFor(t, 5*time.Second, func() bool { return hget(t, direct[2], meta, "fence") == "11" })
			proxies[2].Cut()
			proxies[2].Release(redistest.ToClient)
			if o := <-done; !errors.Is(o.err, locker.ErrNoQuorum) {
				t.Fatalf("first attempt, the write-back's reply cut: got %v, want ErrNoQuorum", o.err)
			}
			if other {
				proxies[0].Block(true)
				proxies[1].Block(false)
			}
			lease, err := bid.Obtain(bg)
			if err != nil {
				t.Fatalf("retried as itself: %v", err)
			}
			if lease.Fence() != 11 {
				t.Errorf("fence: got %d, want 11, the number the first attempt wrote back", lease.Fence())
			}
			if got := hget(t, direct[2], claim(key, meta).MarkKey, "fence"); got != "11" {
				t.Errorf("node 2's mark: got fence %s, want 11, the counter the claim raised", got)
			}
			must(t, lease.Release(bg))
		})
	}
}

// TestQuorumFenceOwnUnread: the write-back counts a node where the claim
// holds the lease and the counter stands at its own increment, whose reply
// it did not read (it won on the first two replies). Counters 10, 5, 10;
// node 2's replies are slow: nodes 0 and 1 give 11 and 6, node 2 took 11
// too. The write-back goes to nodes 1 (cut) and 2: at e2abc79, node 2
// (counter 11, not raised by the write-back) did not count, and the claim
// failed (found by review).
func TestQuorumFenceOwnUnread(t *testing.T) {
	t.Parallel()
	x := newFenceNodes(t, 5*time.Second, [3]int{10, 5, 10}, -1)
	proxies, clients, l, key, meta, claim := x.proxies, x.clients, x.l, x.key, x.meta, x.claim
	var armed atomic.Bool
	armed.Store(true)
	clients[1].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
		if isFenceWrite(cmd) && armed.CompareAndSwap(true, false) {
			proxies[1].Block(true) // the write-back to node 1 is lost
		}
	}))
	proxies[2].Delay(redistest.ToClient, time.Second)
	lease, err := l.Obtain(bg, claim(key, meta))
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if armed.Load() {
		t.Fatalf("no write-back to node 1 (fence %d): want nodes 0 and 1 to answer first", lease.Fence())
	}
	if lease.Fence() != 11 {
		t.Errorf("fence: got %d, want 11", lease.Fence())
	}
	proxies[2].Delay(redistest.ToClient, 0)
	proxies[1].Block(false)
	must(t, lease.Release(bg))
}

// TestQuorumFenceRaisedUnderLease: the write-back counts a node where the
// claim holds the lease although another claim's write-back raised the
// counter there above its fence since it took the lease (under overload:
// the slot before's late write-back, that claim given up as too late).
// Counters 20, 5, 17; node 1 is held by the slot before: the claim wins on
// nodes 0 and 2 with 21 and 18; before its write-back reaches node 2, node
// 2's counter is raised to 25; its write-back to node 1 is cut. At
// 61f4c91 (only raises and the claim's own numbers counted) it failed
// for want of a majority.
func TestQuorumFenceRaisedUnderLease(t *testing.T) {
	t.Parallel()
	x := newFenceNodes(t, 5*time.Second, [3]int{20, 5, 17}, -1)
	proxies, clients, direct, l, key, meta, claim := x.proxies, x.clients, x.direct, x.l, x.key, x.meta, x.claim
	must(t, direct[1].Set(bg, key, "slot-before", time.Minute).Err())
	var armed1, armed2 atomic.Bool
	armed1.Store(true)
	armed2.Store(true)
	clients[1].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
		if isFenceWrite(cmd) && armed1.CompareAndSwap(true, false) {
			proxies[1].Block(true) // the write-back to node 1 is lost
		}
	}))
	clients[2].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
		if isFenceWrite(cmd) && armed2.CompareAndSwap(true, false) {
			// (On the flusher's goroutine: errors, not t.Fatal.)
			if err := direct[2].HSet(bg, meta, "fence", 25).Err(); err != nil {
				t.Error(err)
			}
		}
	}))
	lease, err := l.Obtain(bg, claim(key, meta))
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if armed1.Load() || armed2.Load() {
		t.Fatalf("write-backs sent to node 1: %v, node 2: %v; want both (fence %d)", !armed1.Load(), !armed2.Load(), lease.Fence())
	}
	if lease.Fence() != 21 {
		t.Errorf("fence: got %d, want 21", lease.Fence())
	}
	proxies[1].Block(false)
	must(t, lease.Release(bg))
}

// TestQuorumReplaceFence: an overlap "replace" claim of the next slot
// starts to wait, taking its numbers, before this slot's write-back has
// reached the masters it waits on; it runs once this slot's run ended and
// must take a greater fence. Replica A claims slot s at counters 10, 5, 6:
// fence 11, written back to nodes 1 and 2. Before that write-back lands,
// replica B's replace claim of s+1 waits on nodes 1 and 2 (node 0 refuses
// B's connections) with 7 and 8; A's Finish then reaches node 2 behind its
// write-back there. Before take.lua took a new fence as it handed
// the lease over, B ran after A with fence 7 or 8 (found by review). A
// retried waiting claim wrote its wait numbers back, though its takes
// take new ones: with A's fence above them on both nodes, that write-back
// counted neither (at e2abc79), and the retry failed for want of a
// majority (found by review; the same numbers on both nodes hid it).
func TestQuorumReplaceFence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cut     bool // node 2's counter is ahead when B takes over, and the write-back of B's new fence to node 1 is cut
		retried bool // B's first attempt is cut in flight (it waits on nodes 1 and 2, its replies held); it is retried as itself after A's run
	}{
		{"new fence on take", false, false},
		{"new fence's write-back cut, then the claim retried", true, false},
		{"claim cut while waiting, retried after the run it waited for", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slot := time.Now().Truncate(time.Second).Add(-time.Minute)
			key, meta := keys(t)
			r := newTwoReplicas(t, key, meta, slot, [3]int{10, 5, 6})
			replace := func(slot time.Time) locker.Claim {
				c := slotClaim(key, meta, slot)
				c.Unwatched, c.TTL, c.Replace, c.NextKey = true, 10*time.Second, true, key+":next"
				return c
			}
			bBid, err := r.qb.Bid(replace(slot.Add(time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			bDone := make(chan obtained, 1)
			var start sync.Once
			var held [3]atomic.Bool
			for i := 1; i <= 2; i++ {
				r.viaA[i].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
					if !isFenceWrite(cmd) || held[i].Swap(true) {
						return
					}
					// A's write-back waits until B's claim waits on this
					// node. (On the flusher's goroutine: errors, not
					// t.Fatal.)
					start.Do(func() {
						r.pb[0].Block(true)
						ctx, cancel := context.WithCancel(bg)
						if tc.retried {
							r.pb[1].Hold(redistest.ToClient)
							r.pb[2].Hold(redistest.ToClient)
							ctx, cancel = context.WithTimeout(bg, 300*time.Millisecond)
						}
						go func() {
							defer cancel()
							lease, err := bBid.Obtain(ctx)
							bDone <- obtained{lease, err}
						}()
					})
					for n := 0; r.direct[i].Get(bg, key+":next").Val() != bBid.Token(); n++ {
						if n == 500 {
							t.Errorf("node %d: B's claim did not wait there within 5s", i)
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}))
			}
			var cut atomic.Bool
			if tc.cut {
				r.viaB[1].AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
					if isFenceWrite(cmd) && !cut.Swap(true) {
						r.pb[1].Block(true)
					}
				}))
			}
			// Node 2's answer comes late, so that A's fence comes from
			// nodes 0 and 1 (11 and 6) and is written back.
			r.pa[2].Delay(redistest.ToClient, 300*time.Millisecond)
			a := mustObtain(t, r.qa, replace(slot))
			r.pa[2].Delay(redistest.ToClient, 0)
			if !held[1].Load() {
				t.Fatalf("A's write-back to node 1 was not sent (its fence %d)", a.Fence())
			}
			if a.Fence() != 11 {
				t.Fatalf("A's fence: got %d, want 11 (node 0's counter + 1)", a.Fence())
			}
			if tc.cut {
				// B's take: node 1 gives 12, node 2 21, written back to
				// node 1 (cut) and node 0 (which refuses B).
				must(t, r.direct[2].HSet(bg, meta, "fence", 20).Err())
			}
			if err := a.Finish(bg, "ok"); err != nil {
				t.Fatalf("A's Finish: %v", err)
			}
			var b *locker.Lease
			if tc.retried {
				select {
				case o := <-bDone:
					if o.err == nil {
						t.Fatal("B's claim with its replies held: got a lease, want an error (it may have won)")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("B's claim did not return within 10s")
				}
				r.pb[1].Release(redistest.ToClient)
				r.pb[2].Release(redistest.ToClient)
				// Its marks wait on nodes 1 and 2, whose lease A freed: the
				// retry takes the lease over there.
				if b, err = bBid.Obtain(bg); err != nil {
					t.Fatalf("B's claim retried: %v", err)
				}
			} else if tc.cut {
				select {
				case o := <-bDone:
					if !errors.Is(o.err, locker.ErrNoQuorum) {
						t.Fatalf("B's claim with its new fence's write-back cut: got %v, want ErrNoQuorum", o.err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("B's claim did not return within 10s")
				}
				r.pb[1].Block(false)
				// The lease is B's on nodes 1 and 2: the retry wins it
				// with the fence of its take and writes that back.
				if b, err = bBid.Obtain(bg); err != nil {
					t.Fatalf("B's claim retried: %v", err)
				}
				if b.Fence() != 21 {
					t.Errorf("B's fence after the retry: got %d, want 21 (its take's on node 2)", b.Fence())
				}
			} else {
				b = awaitObtained(t, bDone, "B's claim")
			}
			if b.Fence() <= a.Fence() {
				t.Errorf("B's fence for the next slot, which waited for A's run: got %d, want above A's %d", b.Fence(), a.Fence())
			}
			r.pb[0].Block(false)
			must(t, b.Release(bg))
		})
	}
}

// TestQuorumMarks: marks, busy records and history are written on each node.
func TestQuorumMarks(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	l := newQuorum(t, clients, locker.Options{})
	key, meta := keys(t)
	mark, hist := key+":slot", key+":history"
	claim := locker.Claim{Key: key, MetaKey: meta, TTL: time.Second, MarkKey: mark, MarkTTL: time.Minute,
		Retention: time.Hour, Running: "running", Records: recs, HistoryKey: hist, HistoryLen: 5, HistoryTTL: time.Hour}

	lease := mustObtain(t, l, claim)
	// Obtain returns once a majority claimed; the last node's claim lands
	// soon after.
	for _, c := range clients {
		waitFor(t, time.Second, func() bool { return exists(t, c, mark) })
		runningMark(t, c, mark, lease, "running")
	}
	// Another slot's claim while the lease is held: busy, recorded on
	// every node.
	busy := claim
	busy.MarkKey = key + ":slot-busy"
	if err := tryObtain(l, busy); !errors.Is(err, locker.ErrNotObtained) {
		t.Fatalf("Obtain while held: got %v, want ErrNotObtained", err)
	}
	if err := lease.Finish(bg, "done:ok"); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for i, c := range clients {
		if got := hget(t, c, mark, "end"); got != "done:ok" {
			t.Errorf("node %d mark end: got %q, want done:ok", i, got)
		}
		if got := hget(t, c, busy.MarkKey, "end"); got != recs.Busy {
			t.Errorf("node %d busy mark end: got %q, want %q", i, got, recs.Busy)
		}
		// Both records are scored by the server's time of writing (no
		// slot): written in the same millisecond they sort by value, so
		// the order is not checked.
		if got := lrange(t, c, hist); len(got) != 2 || !slices.Contains(got, "done:ok") || !slices.Contains(got, recs.Busy) {
			t.Errorf("node %d history: got %q, want done:ok and %s", i, got, recs.Busy)
		}
		if exists(t, c, key) {
			t.Errorf("node %d lease key after Finish", i)
		}
	}
	err := tryObtain(l, claim)
	var noe *locker.NotObtainedError
	if !errors.As(err, &noe) || noe.Reason != locker.ErrSlotClaimed || noe.Record != "done:ok" {
		t.Fatalf("Obtain of a finished slot: got %v, want ErrSlotClaimed with the record", err)
	}

	// A mark on one node only (a minority) does not block the slot.
	claim.MarkKey = key + ":slot2"
	must(t, clients[0].HSet(bg, claim.MarkKey, "token", "stale", "end", "stale").Err())
	must(t, clients[0].Expire(bg, claim.MarkKey, time.Minute).Err())
	lease = mustObtain(t, l, claim)
	if err := lease.Release(bg); err != nil {
		t.Fatalf("Release: %v", err)
	}
	for _, c := range clients[1:] {
		waitFor(t, time.Second, func() bool { return exists(t, c, claim.MarkKey) })
		runningMark(t, c, claim.MarkKey, lease, "running")
	}
}

// TestQuorumContention: a short contention run over a quorum of 3.
func TestQuorumContention(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	key, meta := keys(t)
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
		wg.Go(func() {
			for time.Now().Before(stop) {
				lease, err := lockers[g%3].Obtain(bg, locker.Claim{Key: key, MetaKey: meta, TTL: time.Second})
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
		})
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
	t.Logf("%d acquisitions", len(fences))
}

// TestQuorumSlotContention: three replicas (two claimants each) claim the
// same slots at the same instant over a quorum of 3. Each slot is won by
// exactly one claimant (promise 1: never two; promise 2: never none, also
// when the votes split), and the others see ErrSlotClaimed.
func TestQuorumSlotContention(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	key, meta := keys(t)
	var lockers [3]*locker.Locker
	for i := range lockers {
		lockers[i] = newQuorum(t, clients, locker.Options{Retries: 5, RetryDelay: 20 * time.Millisecond, NodeTimeout: 2 * time.Second})
	}
	base := time.Now().Truncate(time.Second).Add(-time.Hour)
	const slots, claimants = 30, 6
	for i := range slots {
		slot := base.Add(time.Duration(i) * time.Second)
		claim := slotClaim(key, meta, slot)
		claim.TTL, claim.Unwatched = 5*time.Second, true
		var (
			winners atomic.Int32
			wg      sync.WaitGroup
		)
		gate := make(chan struct{})
		for g := range claimants {
			wg.Go(func() {
				<-gate
				lease, err := lockers[g%3].Obtain(bg, claim)
				switch {
				case err == nil:
					winners.Add(1)
					if err := lease.Finish(bg, "done:"+strconv.Itoa(g)); err != nil {
						t.Errorf("slot %d: Finish: %v", i, err)
					}
				case errors.Is(err, locker.ErrSlotClaimed):
				default:
					t.Errorf("slot %d: claimant %d: got %v, want a lease or ErrSlotClaimed", i, g, err)
				}
			})
		}
		close(gate)
		wg.Wait()
		if n := winners.Load(); n != 1 {
			t.Errorf("slot %d: got %d winners, want exactly 1 (marks: %v / %v / %v)", i, n,
				hgetall(t, clients[0], claim.MarkKey), hgetall(t, clients[1], claim.MarkKey), hgetall(t, clients[2], claim.MarkKey))
		}
	}
}

// TestQuorumDue: a slot claim sent ahead of its slot (Claim.Due) wins on a
// majority, and its lease says when the slot is due on the granting nodes'
// clocks.
func TestQuorumDue(t *testing.T) {
	t.Parallel()
	_, clients := cluster(t, 3, redistest.Options{})
	q := newQuorum(t, clients, locker.Options{})
	slot := time.Now().Truncate(time.Second).Add(time.Hour)
	cl := slotClaim("{due}:lease", "{due}:meta", slot)
	cl.NotBefore, cl.Due = time.Now().Add(-time.Second), time.Now().Add(3*time.Second)
	lease := mustObtain(t, q, cl)
	if d := time.Until(lease.Due()); d < 2*time.Second || d > 3500*time.Millisecond {
		t.Errorf("Due: got %v from now, want about 3s (Claim.Due)", d)
	}
}

// TestQuorumMixedRefusal: three masters refuse one claim for mixed
// reasons, and the one that records the skip (busy: the lease is held
// there, its holder's release lost) is alone.
//   - The lease is busy on master 1 too, but master 1 hears the claim
//     before it is due (master 0's requests are delayed until after) and
//     answers "early", writing nothing, after master 0 (its replies are
//     delayed more): the refusal is early, so the claim is sent again at
//     its due, when master 1 decides.
//   - Master 1 lost its data and first saw the job after the slot (a
//     newer replica's first sight): the slot is before it there
//     ("unborn"). The refusal decides the slot, with its record on one
//     master: it says so (Minority), and RecordSkip completes the record
//     on a majority.
//
// The third master grants the claim, which is dropped there.
func TestQuorumMixedRefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		unborn bool
	}{
		{name: "busy, then early"},
		{name: "busy and unborn", unborn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxies, clients, direct := proxiedNodes(t, 5*time.Second)
			q := newQuorum(t, clients, locker.Options{NodeTimeout: 4 * time.Second})
			key, meta := keys(t)
			// Warm up: every connection dialled and the scripts loaded, so
			// that each node sees the claim one delay after it is sent.
			warm := slotClaim(key+"-warm", meta+"-warm", time.Now().Truncate(time.Second))
			if err := mustObtain(t, q, warm).Release(bg); err != nil {
				t.Fatal(err)
			}
			slot := time.Now().Truncate(time.Second)
			must(t, direct[0].Set(bg, key, "lost-release", time.Minute).Err())
			if tc.unborn {
				must(t, direct[1].HSet(bg, meta, "first", slot.Unix()+1).Err())
			} else {
				must(t, direct[1].Set(bg, key, "lost-release", time.Minute).Err())
				proxies[0].Delay(redistest.ToServer, 1500*time.Millisecond)
				proxies[1].Delay(redistest.ToClient, 2500*time.Millisecond)
			}
			cl := slotClaim(key, meta, slot)
			cl.NotBefore, cl.Due, cl.NotAfter = time.Now().Add(-time.Second), time.Now().Add(time.Second), time.Now().Add(time.Minute)
			if tc.unborn {
				cl.Due = cl.NotBefore // due: a busy lease refuses it
			}
			err := tryObtain(q, cl)
			proxies[0].Delay(redistest.ToServer, 0)
			proxies[1].Delay(redistest.ToClient, 0)
			var ne *locker.NotObtainedError
			if !errors.As(err, &ne) {
				t.Fatalf("Obtain: got %v, want a NotObtainedError", err)
			}
			mark := cl.MarkKey
			for i, want := range []string{recs.Busy, "", ""} {
				if got := hget(t, direct[i], mark, "end"); got != want {
					t.Errorf("node %d mark end after the claim: got %q, want %q", i, got, want)
				}
			}
			if !tc.unborn {
				if !errors.Is(err, locker.ErrEarly) || ne.Minority {
					t.Fatalf("Obtain: got %v (Minority %v), want ErrEarly, Minority false", err, ne.Minority)
				}
				return
			}
			if !errors.Is(err, locker.ErrNotObtained) || !ne.Minority {
				t.Fatalf("Obtain: got %v (Minority %v), want ErrNotObtained (busy), Minority true", err, ne.Minority)
			}
			if exists(t, direct[2], mark) {
				t.Errorf("node 2: the claim's mark after the refusal, want it dropped")
			}
			skip := locker.Skip{MarkKey: mark, MetaKey: meta, Slot: slot, Record: recs.Busy, Retention: time.Hour,
				NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute)}
			if err := q.RecordSkip(bg, skip); err != nil {
				t.Fatalf("RecordSkip: got %v, want nil", err)
			}
			for i, want := range []string{recs.Busy, "", recs.Busy} {
				if got := hget(t, direct[i], mark, "end"); got != want {
					t.Errorf("node %d mark end after RecordSkip: got %q, want %q", i, got, want)
				}
			}
		})
	}
}
