package locker_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
	"github.com/redis/go-redis/v9"
)

// abortedMark checks that mark was ended with recs.Aborted by token (any
// token when token is ""), with fence, and kept with a TTL.
func abortedMark(t *testing.T, c *redis.Client, mark, token, fence string) {
	t.Helper()
	m := hgetall(t, c, mark)
	if m["end"] != recs.Aborted {
		t.Errorf("mark %s end: got %q (mark %v), want %q", mark, m["end"], m, recs.Aborted)
	}
	if token == "" && len(m["token"]) != 32 || token != "" && m["token"] != token {
		t.Errorf("mark %s token: got %q, want the claim's %q", mark, m["token"], token)
	}
	if m["fence"] != fence {
		t.Errorf("mark %s fence: got %q, want %q", mark, m["fence"], fence)
	}
	if d := pttl(t, c, mark); d <= 0 {
		t.Errorf("mark %s TTL: got %v, want the retention", mark, d)
	}
}

// TestTooLateKeepsSlotClaimed: a claim that Redis ran but that came back
// after its local deadline (here: a 1ms TTL is always past its deadline once
// the drift is taken off) may have won: other replicas may already have seen
// its running mark and given the slot up, so freeing the slot would lose it
// silently. A one-shot Obtain withdraws it: the mark is kept and ended with
// Records.Aborted, the lease key is freed, and the slot stays claimed.
func TestTooLateKeepsSlotClaimed(t *testing.T) {
	t.Parallel()
	claim := func(key, meta string) locker.Claim {
		return locker.Claim{Key: key, MetaKey: meta, TTL: time.Millisecond,
			MarkKey: key + ":slot:1", MarkTTL: 30 * time.Second, Retention: time.Hour, Running: "running", Records: recs}
	}

	t.Run("single node", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := newClient(t, s)
		l := mustNew(t, c, locker.Options{})
		key, meta := keys(t)
		cl := claim(key, meta)
		err := tryObtain(l, cl)
		if !errors.Is(err, locker.ErrTooLate) {
			t.Fatalf("Obtain: got %v, want ErrTooLate", err)
		}
		abortedMark(t, c, cl.MarkKey, "", "1")
		if exists(t, c, key) {
			t.Errorf("lease key of a withdrawn claim: got %q, want none", get(t, c, key))
		}
		again := cl
		again.TTL = time.Second
		err = tryObtain(l, again)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != recs.Aborted {
			t.Fatalf("second claim of the slot: got %v, want ErrSlotClaimed with record %q", err, recs.Aborted)
		}
	})

	// With a Bid the too-late claim stays pending: a retry is the same
	// claim (same token, same fence), and Withdraw ends it with Aborted.
	t.Run("single node, bid", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := newClient(t, s)
		l := mustNew(t, c, locker.Options{})
		key, meta := keys(t)
		cl := claim(key, meta)
		b, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, err := b.Obtain(bg); !errors.Is(err, locker.ErrTooLate) {
				t.Fatalf("attempt %d: got %v, want ErrTooLate", i+1, err)
			}
			if !b.Sent() {
				t.Fatalf("attempt %d: Sent() false after an attempt", i+1)
			}
			m := hgetall(t, c, cl.MarkKey)
			if m["token"] != b.Token() || m["fence"] != "1" || m["end"] != "" {
				t.Fatalf("attempt %d: mark got %v, want the bid's running claim (token %s, fence 1)", i+1, m, b.Token())
			}
		}
		if got := hget(t, c, meta, "fence"); got != "1" {
			t.Errorf("fence counter after a retry as itself: got %q, want 1", got)
		}
		if err := b.Withdraw(bg); err != nil {
			t.Fatalf("Withdraw: %v", err)
		}
		abortedMark(t, c, cl.MarkKey, b.Token(), "1")
	})

	t.Run("quorum of 3", func(t *testing.T) {
		t.Parallel()
		_, clients := cluster(t, 3, redistest.Options{})
		q := newQuorum(t, clients, locker.Options{})
		key, meta := keys(t)
		cl := claim(key, meta)
		err := tryObtain(q, cl)
		if !errors.Is(err, locker.ErrTooLate) || !errors.Is(err, locker.ErrNoQuorum) {
			t.Fatalf("Obtain: got %v, want ErrNoQuorum and ErrTooLate", err)
		}
		token := ""
		for i, c := range clients {
			abortedMark(t, c, cl.MarkKey, token, "1")
			if i == 0 {
				token = hget(t, c, cl.MarkKey, "token")
			}
			if exists(t, c, key) {
				t.Errorf("node %d: lease key of a withdrawn claim left", i)
			}
		}
		again := cl
		again.TTL = time.Second
		if err := tryObtain(q, again); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Fatalf("second claim of the slot: got %v, want ErrSlotClaimed", err)
		}
	})
}

// TestWithdraw: a bid given up after it may have won ends its own running
// mark with Records.Aborted and frees the lease key; the slot stays claimed
// (high-water and mark). Before any attempt, and when repeated, it does
// nothing.
func TestWithdraw(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	l := mustNew(t, c, locker.Options{})
	key, meta := keys(t)
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	cl := slotClaim(key, meta, slot)
	cl.Unwatched = true
	cl.HistoryKey, cl.HistoryLen, cl.HistoryTTL = key+":history", 10, time.Hour

	b, err := l.Bid(cl)
	if err != nil {
		t.Fatal(err)
	}
	if b.Sent() {
		t.Errorf("Sent() before any attempt: got true, want false")
	}
	if err := b.Withdraw(bg); err != nil {
		t.Fatalf("Withdraw before any attempt: %v", err)
	}
	if exists(t, c, cl.MarkKey) || exists(t, c, key) || exists(t, c, meta) {
		t.Fatalf("Withdraw before any attempt wrote to Redis")
	}

	lease, err := b.Obtain(bg)
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	if lease.Token() != b.Token() {
		t.Errorf("lease token %q, want the bid's %q", lease.Token(), b.Token())
	}
	for i := range 2 {
		if err := b.Withdraw(bg); err != nil {
			t.Fatalf("Withdraw #%d: %v", i+1, err)
		}
	}
	abortedMark(t, c, cl.MarkKey, b.Token(), "1")
	if exists(t, c, key) {
		t.Errorf("lease key after Withdraw: got %q, want none", get(t, c, key))
	}
	if got := hget(t, c, meta, "hw"); got != unix(slot) {
		t.Errorf("high-water after Withdraw: got %q, want %s (the slot stays claimed)", got, unix(slot))
	}
	if got := lrange(t, c, cl.HistoryKey); len(got) != 1 || got[0] != recs.Aborted {
		t.Errorf("history after two withdrawals: got %q, want [%q] once", got, recs.Aborted)
	}
	if err := lease.Release(bg); !errors.Is(err, locker.ErrLeaseExpired) {
		t.Errorf("Release of the withdrawn lease: got %v, want ErrLeaseExpired", err)
	}
	if err := tryObtain(l, cl); !errors.Is(err, locker.ErrSlotClaimed) {
		t.Errorf("another claim of the slot: got %v, want ErrSlotClaimed", err)
	}
}

// TestQuorumSplitVote: running marks of two other claimants, one node each,
// do not make the slot taken (neither can have won; both undo), so the claim
// fails with the retryable ErrNoQuorum, deletes its own mark and puts the
// node's high-water back, so that a retry can win. One claimant's marks on
// a majority, or final records on a majority, do make it taken.
func TestQuorumSplitVote(t *testing.T) {
	t.Parallel()
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	prev := slot.Add(-time.Minute)
	tests := []struct {
		name        string
		marks       [3]map[string]any // pre-existing mark per node (nil: none)
		wantClaimed bool
	}{
		{"split between two others", [3]map[string]any{
			{"token": "aaa", "fence": 1, "run": "running", "prevhw": unix(prev)},
			{"token": "bbb", "fence": 1, "run": "running", "prevhw": unix(prev)},
			nil,
		}, false},
		{"one other holds a majority", [3]map[string]any{
			{"token": "aaa", "fence": 1, "run": "running", "prevhw": unix(prev)},
			{"token": "aaa", "fence": 1, "run": "running", "prevhw": unix(prev)},
			nil,
		}, true},
		{"final records on a majority", [3]map[string]any{
			{"token": "aaa", "fence": 1, "end": "done:ok"},
			{"token": "aaa", "fence": 1, "end": "done:ok"},
			nil,
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, clients := cluster(t, 3, redistest.Options{})
			key, meta := keys(t)
			claim := slotClaim(key, meta, slot)
			claim.TTL, claim.Unwatched = 5*time.Second, true
			claim.RingKey = key + ":ring"
			span := int64(locker.RingSpan / time.Second)
			// The ring started a whole span below prev, and old, a slot
			// decided near its start, shares its bit with slot.
			base, old := prev.Unix()-span+1, slot.Unix()-span
			for i, m := range tc.marks {
				// Every node had decided old and prev; the others' claims
				// raised their nodes' high-water (and ring) to slot.
				hw := unix(prev)
				must(t, clients[i].SetBit(bg, claim.RingKey, prev.Unix()%span, 1).Err())
				must(t, clients[i].SetBit(bg, claim.RingKey, old%span, 1).Err())
				if m != nil {
					hw = unix(slot)
					must(t, clients[i].HSet(bg, claim.MarkKey, m).Err())
					must(t, clients[i].Expire(bg, claim.MarkKey, time.Minute).Err())
					must(t, clients[i].SetBit(bg, claim.RingKey, slot.Unix()%span, 1).Err())
				}
				must(t, clients[i].HSet(bg, meta, "hw", hw, "first", strconv.FormatInt(base, 10), "rb", strconv.FormatInt(base, 10), "rh", hw).Err())
			}
			q := newQuorum(t, clients, locker.Options{})
			b, err := q.Bid(claim)
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Obtain(bg)
			if got := errors.Is(err, locker.ErrSlotClaimed); got != tc.wantClaimed {
				t.Errorf("Obtain: got %v; ErrSlotClaimed %v, want %v", err, got, tc.wantClaimed)
			}
			if !tc.wantClaimed && !errors.Is(err, locker.ErrNoQuorum) {
				t.Errorf("Obtain: got %v, want ErrNoQuorum (retryable)", err)
			}
			if exists(t, clients[2], claim.MarkKey) {
				t.Errorf("node 2 after the lost claim: got mark %v, want it deleted (the claim lost the vote)", hgetall(t, clients[2], claim.MarkKey))
			}
			if exists(t, clients[2], key) {
				t.Errorf("node 2 after the lost claim: lease key left")
			}
			if got := hget(t, clients[2], meta, "hw"); got != unix(prev) {
				t.Errorf("node 2 high-water after the lost claim: got %q, want the previous %s", got, unix(prev))
			}
			// Its ring bit is cleared, and the ring speaks on (brought back
			// with the high-water): it proves the slot undecided on node 2.
			if got := clients[2].GetBit(bg, claim.RingKey, slot.Unix()%span).Val(); got != 0 {
				t.Errorf("node 2 ring bit of the slot after the lost claim: got %d, want 0 (the ring would say the slot was decided)", got)
			}
			if got := clients[2].GetBit(bg, claim.RingKey, prev.Unix()%span).Val(); got != 1 {
				t.Errorf("node 2 ring bit of the slot before: got %d, want 1 (decided)", got)
			}
			// The claim reused old's bit: the ring no longer speaks for old.
			if got, want := []string{hget(t, clients[2], meta, "rb"), hget(t, clients[2], meta, "rh")}, []string{strconv.FormatInt(old+1, 10), unix(prev)}; !slices.Equal(got, want) {
				t.Errorf("node 2 ring base and high-water after the lost claim: got %q, want %q (the ring speaks on, above the bits the claim reused)", got, want)
			}
			sk := locker.Skip{MarkKey: markOf(key, time.Unix(old, 0)), MetaKey: meta, RingKey: claim.RingKey, Slot: time.Unix(old, 0), Record: "skipped:outage",
				Retention: time.Hour, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(-time.Second)}
			if err := mustNew(t, clients[2], locker.Options{}).RecordSkip(bg, sk); !errors.Is(err, locker.ErrLate) {
				t.Errorf("node 2 skip of old, decided a ring ago, after the lost claim: got %v, want ErrLate (its bit was reused)", err)
			}
			if tc.wantClaimed {
				return
			}
			// The other claimants lost too and undo theirs (as this claim
			// did); then a retry of this very bid wins.
			for _, c := range clients[:2] {
				must(t, c.Del(bg, claim.MarkKey).Err())
				must(t, c.HSet(bg, meta, "hw", unix(prev)).Err())
			}
			lease, err := b.Obtain(bg)
			if err != nil {
				t.Fatalf("retry after the split: %v", err)
			}
			t.Cleanup(func() { _ = lease.Release(bg) })
			// Obtain returns once a majority answered; the last node's
			// claim may still be on its way (bounded by NodeTimeout).
			for i, c := range clients {
				waitFor(t, 5*time.Second, func() bool { return exists(t, c, claim.MarkKey) })
				if got := hget(t, c, claim.MarkKey, "token"); got != b.Token() {
					t.Errorf("node %d mark token after the retry: got %q, want the bid's", i, got)
				}
			}
		})
	}
}

// proxiedNodes starts three servers, each with a direct client and a
// client through a proxy of its own (dialled as redisconn does, with the
// given read timeout), all stopped in t.Cleanup.
func proxiedNodes(t *testing.T, read time.Duration) (proxies []*redistest.Proxy, clients, direct []*redis.Client) {
	t.Helper()
	proxies = make([]*redistest.Proxy, 3)
	clients = make([]*redis.Client, 3)
	direct = make([]*redis.Client, 3)
	for i := range proxies {
		s := redistest.Start(t, redistest.Options{})
		direct[i] = newClient(t, s)
		proxies[i] = redistest.StartProxyFor(t, s)
		c := redis.NewClient(&redis.Options{
			Addr: proxies[i].Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DialerRetries: 1,
			DialTimeout: time.Second, ReadTimeout: read, WriteTimeout: time.Second,
		})
		t.Cleanup(func() { _ = c.Close() })
		clients[i] = c
	}
	return proxies, clients, direct
}

// holdBehind holds, on the proxies held, the replies of another claim of
// slot (key+"-other"), and returns once that claim reached their
// servers: calls sent there after it queue behind it in this process,
// until NodeTimeout. A cleanup releases every proxy of all and waits for
// that claim; the channel returned is closed once its Obtain returned.
func holdBehind(t *testing.T, q *locker.Locker, all, held []*redistest.Proxy, key, meta string, slot time.Time) chan struct{} {
	t.Helper()
	sent := make([]int64, len(held))
	for i, p := range held {
		p.Hold(redistest.ToClient)
		sent[i] = p.Bytes(redistest.ToServer)
	}
	other := slotClaim(key+"-other", meta+"-other", slot)
	other.Unwatched = true
	ob, err := q.Bid(other)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if lease, err := ob.Obtain(bg); err == nil { // held until released
			_ = lease.Release(bg)
		}
	}()
	t.Cleanup(func() {
		for _, p := range all {
			p.Release(redistest.ToClient)
		}
		<-done
	})
	for i, p := range held {
		for n := 0; p.Bytes(redistest.ToServer) == sent[i]; n++ {
			if n == 500 {
				t.Fatalf("held proxy %d: the other claim never reached its server", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return done
}

// TestQuorumSplitCutShort: after a lost split vote, an attempt that its
// context cut short reports that split vote again, with ErrCutShort and
// its context's error: it learned nothing new about the vote, so it is
// neither an outage nor a new answer. Cut in this replica's queue (behind
// replies the proxies hold for another claim), with ErrNotSent; cut in
// flight (its own replies held until its context ends), with its marks
// kept, since they may have won. Without an earlier split it is no split
// vote; after an attempt that may have won (its replies held), the cut
// attempt keeps that attempt's marks, to be retried or withdrawn. Nodes
// that refuse the connection, whose replies do not come within NodeTimeout
// while the context lives, or too many of them down for a majority beside
// a cut one, are an outage.
func TestQuorumSplitCutShort(t *testing.T) {
	t.Parallel()
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	prev := slot.Add(-time.Minute)
	tests := []struct {
		name      string
		first     string // the first attempt: "split" (a lost split vote), "unheard" (replies held: it may have won), or "" (none)
		then      string // the next attempt: "queue" (cut queued behind held replies), "flight" (its replies held past its context), "timeout" (held past NodeTimeout), "refused", "down" (two nodes refuse, the third's reply held past the context), "readtimeout" (held past the client's ReadTimeout, shorter than NodeTimeout and the context)
		wantSplit bool
	}{
		{"split, then cut in the queue", "split", "queue", true},
		{"split, then cut in flight", "split", "flight", true},
		{"cut in the queue at once", "", "queue", false},
		{"may have won, then cut in the queue", "unheard", "queue", false},
		{"split, then the nodes refuse", "split", "refused", false},
		{"split, then NodeTimeout", "split", "timeout", false},
		{"split, then two nodes down and one cut", "split", "down", false},
		{"split, then the client's read timeout", "split", "readtimeout", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, meta := keys(t)
			read := 10 * time.Second
			if tc.then == "readtimeout" {
				read = 300 * time.Millisecond
			}
			proxies, clients, direct := proxiedNodes(t, read)
			for i := range proxies {
				hw := unix(prev)
				if i < 2 && tc.first == "split" {
					// Two other claimants hold one node each: the vote splits.
					hw = unix(slot)
					must(t, direct[i].HSet(bg, markOf(key, slot), "token", []string{"aaa", "bbb"}[i], "fence", 1, "run", "running", "prevhw", unix(prev)).Err())
					must(t, direct[i].Expire(bg, markOf(key, slot), time.Minute).Err())
				}
				must(t, direct[i].HSet(bg, meta, "hw", hw, "first", unix(prev)).Err())
			}
			claim := slotClaim(key, meta, slot)
			claim.Unwatched = true
			nodeTimeout := 2 * time.Second
			if tc.then == "timeout" {
				nodeTimeout = 500 * time.Millisecond
			}
			q := newQuorum(t, clients, locker.Options{NodeTimeout: nodeTimeout})
			// Connected, and obtain.lua loaded, before any reply is held
			// (else a held NOSCRIPT would keep the claim from running).
			warm := slotClaim(key+"-warm", meta+"-warm", slot)
			warm.Unwatched = true
			wl, err := q.Obtain(bg, warm)
			if err != nil {
				t.Fatal(err)
			}
			must(t, wl.Release(bg))
			b, err := q.Bid(claim)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				for _, p := range proxies {
					p.Release(redistest.ToClient)
				}
			})
			switch tc.first {
			case "split":
				_, err := b.Obtain(bg)
				if !errors.Is(err, locker.ErrSplitVote) {
					// A loaded host may fail one node's call (CI's run once
					// got EOF from node 0): the bid, retried as itself, meets
					// the same split.
					t.Logf("first attempt: %v; once more", err)
					_, err = b.Obtain(bg)
				}
				if !errors.Is(err, locker.ErrSplitVote) {
					t.Fatalf("first attempt: got %v, want ErrSplitVote", err)
				}
			case "unheard":
				for _, p := range proxies {
					p.Hold(redistest.ToClient)
				}
				ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
				_, err := b.Obtain(ctx)
				cancel()
				if err == nil || errors.Is(err, locker.ErrSplitVote) {
					t.Fatalf("first attempt, replies held: got %v, want an I/O error (it may have won)", err)
				}
			}
			switch tc.then {
			case "refused":
				for _, p := range proxies {
					p.Close()
				}
			case "flight", "timeout", "readtimeout":
				for _, p := range proxies {
					p.Hold(redistest.ToClient)
				}
			case "down":
				proxies[0].Close()
				proxies[1].Close()
				proxies[2].Hold(redistest.ToClient)
			case "queue":
				// Another claim's replies are held: this bid's calls queue
				// behind them (for NodeTimeout) and its context ends first.
				holdBehind(t, q, proxies, proxies, key, meta, slot)
			}
			bound := 100 * time.Millisecond // the calls wait in the queue
			switch tc.then {
			case "flight", "down":
				bound = 500 * time.Millisecond // written at once, then cut
			case "timeout":
				bound = 5 * time.Second // NodeTimeout ends the calls first
			case "readtimeout":
				bound = time.Second // the client's ReadTimeout ends the calls first
			}
			ctx, cancel := context.WithTimeout(bg, bound)
			released := make(chan struct{})
			go func() {
				// Once this attempt's calls have ended, the replies flow
				// again: what the attempt does next (a drop of its marks,
				// if it thought it lost) reaches the nodes.
				defer close(released)
				select {
				case <-ctx.Done():
				case <-time.After(nodeTimeout + time.Second): // "timeout": well after the calls' own
				}
				time.Sleep(50 * time.Millisecond)
				if tc.then == "refused" {
					return // the proxies are closed
				}
				for _, p := range proxies {
					p.Release(redistest.ToClient)
				}
			}()
			_, err = b.Obtain(ctx)
			cancel()
			<-released
			if got := errors.Is(err, locker.ErrSplitVote); got != tc.wantSplit {
				t.Errorf("attempt: got %v; ErrSplitVote %v, want %v", err, got, tc.wantSplit)
			}
			if got := errors.Is(err, locker.ErrCutShort); got != tc.wantSplit {
				t.Errorf("attempt: got %v; ErrCutShort %v, want %v", err, got, tc.wantSplit)
			}
			switch tc.then {
			case "down":
				if !errors.Is(err, locker.ErrNoQuorum) {
					t.Errorf("attempt: got %v, want ErrNoQuorum", err)
				}
				return
			case "refused", "timeout", "readtimeout":
				if !errors.Is(err, locker.ErrNoQuorum) || errors.Is(err, locker.ErrNotSent) || errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("attempt: got %v, want ErrNoQuorum without ErrNotSent or the context's error", err)
				}
				return
			case "flight":
				if errors.Is(err, locker.ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("attempt: got %v, want context.DeadlineExceeded without ErrNotSent", err)
				}
				// Node 2 held no other claim's mark: this attempt won there
				// (its reply lost), and the mark stays for a retry or Withdraw.
				if got := hget(t, direct[2], markOf(key, slot), "token"); got != b.Token() {
					t.Errorf("node 2 mark token after the attempt cut in flight: got %q, want the bid's (it may have won)", got)
				}
				return
			}
			if !errors.Is(err, locker.ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("attempt: got %v, want ErrNotSent and context.DeadlineExceeded", err)
			}
			if tc.first == "unheard" {
				for i, c := range direct {
					if got := hget(t, c, markOf(key, slot), "token"); got != b.Token() {
						t.Errorf("node %d mark token after the cut attempt: got %q, want the bid's (it may have won: kept for a retry or Withdraw)", i, got)
					}
				}
			}
		})
	}
}

// TestQuorumUnsentNotWithdrawn: a quorum bid is dropped and withdrawn
// only on the nodes that its calls reached. Its attempt waits in this
// replica's queues, behind another claim whose replies the proxies hold,
// until its context ends: on every node, the bid reached nothing, is not
// Sent, and Withdraw has nothing to tell; on all but node 0, where it won,
// it cannot have won a majority, so its mark there is dropped at once, and
// Withdraw needs no answer from the nodes it never reached. Before, an
// overloaded replica withdrew every bid that its queues had cut, on every
// node, and waited for the nodes it had never reached. The attempt returns
// at its bound, its queued calls dropped then, not when the held calls end.
func TestQuorumUnsentNotWithdrawn(t *testing.T) {
	t.Parallel()
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	tests := []struct {
		name     string
		free     int // nodes whose replies flow (the first ones); the others are held
		wantSent bool
	}{
		{"queued on every node", 0, false},
		{"reached one node of three", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, meta := keys(t)
			proxies, clients, direct := proxiedNodes(t, 10*time.Second)
			for i := range proxies {
				must(t, direct[i].HSet(bg, meta, "hw", unix(slot.Add(-time.Minute)), "first", unix(slot.Add(-time.Minute))).Err())
			}
			// The held calls end at NodeTimeout, long after the bid's bound.
			q := newQuorum(t, clients, locker.Options{NodeTimeout: 5 * time.Second})
			warm := slotClaim(key+"-warm", meta+"-warm", slot)
			warm.Unwatched = true
			wl, err := q.Obtain(bg, warm) // connected, obtain.lua loaded
			if err != nil {
				t.Fatal(err)
			}
			must(t, wl.Release(bg))

			// Another claim's replies are held on the nodes past tc.free:
			// the bid's calls queue behind them there.
			done := holdBehind(t, q, proxies, proxies[tc.free:], key, meta, slot)

			claim := slotClaim(key, meta, slot)
			claim.Unwatched = true
			b, err := q.Bid(claim)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(bg, 200*time.Millisecond)
			_, err = b.Obtain(ctx)
			cancel()
			if !errors.Is(err, locker.ErrNotSent) || !errors.Is(err, locker.ErrNoQuorum) {
				t.Fatalf("attempt: got %v, want ErrNoQuorum with ErrNotSent", err)
			}
			select {
			case <-done:
				t.Errorf("the attempt returned only after the held claim's calls ended (NodeTimeout), want at its own bound: its queued calls dropped then")
			default:
			}
			if got := b.Sent(); got != tc.wantSent {
				t.Errorf("Sent() after the attempt: got %v, want %v", got, tc.wantSent)
			}
			for i := range tc.free {
				if m := hgetall(t, direct[i], markOf(key, slot)); len(m) != 0 {
					t.Errorf("node %d mark after an attempt that reached too few nodes to win: got %v, want it dropped", i, m)
				}
			}
			// The held nodes still hold the other claim's replies: an answer
			// from them would take until the cleanup.
			wctx, wcancel := context.WithTimeout(bg, 2*time.Second)
			defer wcancel()
			if err := b.Withdraw(wctx); err != nil {
				t.Errorf("Withdraw: got %v, want nil (the nodes it never reached hold nothing of it)", err)
			}
		})
	}
}

// TestRetriedClaimIsIdempotent: the same claim (same token) sent twice, as
// a retry after a lost reply is, wins both times with the same fence
// instead of reporting its own mark as "slot claimed"; another token's
// claim of the slot is refused.
func TestRetriedClaimIsIdempotent(t *testing.T) {
	t.Parallel()

	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := newClient(t, s)
		l := mustNew(t, c, locker.Options{})
		key, meta := keys(t)
		cl := slotClaim(key, meta, time.Now().Truncate(time.Second))
		cl.Unwatched = true
		b, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		first, err := b.Obtain(bg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.Obtain(bg)
		if err != nil {
			t.Fatalf("the same bid again: got %v, want it won again", err)
		}
		if first.Fence() != 1 || again.Fence() != 1 {
			t.Fatalf("claim then its retry: got fences %d and %d, want 1 and 1", first.Fence(), again.Fence())
		}
		if got := hget(t, c, meta, "fence"); got != "1" {
			t.Errorf("fence counter: got %q, want 1", got)
		}
		err = tryObtain(l, cl)
		var ne *locker.NotObtainedError
		if !errors.Is(err, locker.ErrSlotClaimed) || !errors.As(err, &ne) || ne.Record != "" {
			t.Fatalf("another token's claim of the slot: got %v, want ErrSlotClaimed (running, no record)", err)
		}
		if err := again.Finish(bg, "done:ok"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := hget(t, c, cl.MarkKey, "end"); got != "done:ok" {
			t.Errorf("mark end: got %q, want done:ok", got)
		}
	})

	// The first attempt won, but its replica did not learn it (the retry
	// below is the same bid); its lease expired and the next slot's claim
	// ran, with the next number. The retry wins the slot, once, with a new
	// number: with its first one it would start after that run with a
	// lower fence.
	t.Run("after its lease expired and the next slot ran", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := newClient(t, s)
		l := mustNew(t, c, locker.Options{})
		key, meta := keys(t)
		slot := time.Now().Truncate(time.Second)
		cl := slotClaim(key, meta, slot)
		cl.Unwatched, cl.TTL = true, 500*time.Millisecond
		b, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Obtain(bg); err != nil {
			t.Fatal(err)
		}
		for n := 0; get(t, c, key) != ""; n++ {
			if n == 500 {
				t.Fatal("the first lease did not expire within 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		next := slotClaim(key, meta, slot.Add(time.Second))
		next.Unwatched = true
		nl := mustObtain(t, l, next)
		if nl.Fence() != 2 {
			t.Fatalf("next slot's fence: got %d, want 2", nl.Fence())
		}
		if err := nl.Finish(bg, "done:ok"); err != nil {
			t.Fatalf("next slot's Finish: %v", err)
		}
		again, err := b.Obtain(bg)
		if err != nil {
			t.Fatalf("retry as itself: got %v, want it won", err)
		}
		t.Cleanup(func() { _ = again.Release(bg) })
		if again.Fence() != 3 {
			t.Errorf("retry's fence: got %d, want 3 (above the next slot's 2)", again.Fence())
		}
		if got := hget(t, c, cl.MarkKey, "fence"); got != "3" {
			t.Errorf("mark's fence: got %q, want 3", got)
		}
	})

	// The first attempt reaches Redis but its reply is lost (the server is
	// paused past the call's timeout); the retry is the same claim and wins
	// with the fence the first attempt took.
	t.Run("after a lost reply", func(t *testing.T) {
		t.Parallel()
		s := redistest.Start(t, redistest.Options{})
		c := newClient(t, s)
		l := mustNew(t, c, locker.Options{NodeTimeout: 2 * time.Second})
		key, meta := keys(t)
		cl := slotClaim(key, meta, time.Now().Truncate(time.Second))
		cl.TTL = 5 * time.Second
		b, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		// Warm up: the script is cached and a connection is open, so that
		// the attempt below is written to the server before it is paused
		// (not stuck in a dial or answered NOSCRIPT).
		warm := cl
		warm.Key, warm.MetaKey, warm.MarkKey = key+":warm", meta+":warm", cl.MarkKey+":warm"
		if err := mustObtain(t, l, warm).Release(bg); err != nil {
			t.Fatalf("warm-up release: %v", err)
		}
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
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		_, err = b.Obtain(ctx)
		cancel()
		if err == nil || errors.Is(err, locker.ErrSlotClaimed) || errors.Is(err, locker.ErrNotObtained) {
			t.Fatalf("attempt on a paused server: got %v, want an I/O error", err)
		}
		if !b.Sent() {
			t.Fatalf("Sent() after an attempt that may have reached Redis: got false, want true")
		}
		resume()
		// The attempt lands once the server runs again.
		deadline := time.Now().Add(3 * time.Second)
		for hget(t, c, cl.MarkKey, "token") != b.Token() {
			if time.Now().After(deadline) {
				t.Fatalf("the first attempt never landed: mark %v", hgetall(t, c, cl.MarkKey))
			}
			time.Sleep(10 * time.Millisecond)
		}
		lease, err := b.Obtain(bg)
		if err != nil {
			t.Fatalf("retry as itself: got %v, want it won", err)
		}
		t.Cleanup(func() { _ = lease.Release(bg) })
		if lease.Fence() != 1 {
			t.Errorf("retry's fence: got %d, want 1 (the first attempt's)", lease.Fence())
		}
		if got := hget(t, c, meta, "fence"); got != "1" {
			t.Errorf("fence counter: got %q, want 1 (no second increment)", got)
		}
		if got := get(t, c, key); got != b.Token() {
			t.Errorf("lease key: got %q, want the bid's token", got)
		}
		if err := lease.Ctx().Err(); err != nil {
			t.Errorf("retried lease ended: %v", context.Cause(lease.Ctx()))
		}
	})
}

// TestClaimCutShortByAnError: Redis does not undo a script's writes
// before an error, so a claim whose script took the lease and then had a
// command refused (here SETBIT, the ring's, by the ACL) leaves the lease
// holding its token and no mark. Before, its next attempt found the lease
// busy, and the lease stayed busy until its TTL with nothing running. Now
// the next attempt takes the lease back as its own and wins; and when the
// claim is refused for good instead (another replica recorded the slot),
// it frees the lease.
func TestClaimCutShortByAnError(t *testing.T) {
	t.Parallel()
	slot := time.Now().Truncate(time.Second)

	// cutShort makes the bid's first attempt take the lease and fail on
	// SETBIT (the ACL's refusal: Redis 6.2 and 7.0 say "can't run this
	// command", 7.2 and later "ACL failure in script"), then gives the
	// right back.
	cutShort := func(t *testing.T, l *locker.Locker, admins []*redis.Client, cl locker.Claim) *locker.Bid {
		t.Helper()
		bid, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		setACL(t, admins, "-setbit")
		_, err = bid.Obtain(bg)
		setACL(t, admins, "+setbit")
		if !store.ACLRefused(err) {
			t.Fatalf("attempt without SETBIT: got %v, want the ACL's refusal inside the script", err)
		}
		for i, a := range admins {
			if got := get(t, a, cl.Key); got != bid.Token() {
				t.Fatalf("node %d: lease after the refused attempt: got %q, want the claim's token (the script's writes before the error stay)", i, got)
			}
			if exists(t, a, cl.MarkKey) {
				t.Fatalf("node %d: the refused attempt wrote the mark: the test no longer cuts the claim short between lease and mark", i)
			}
		}
		return bid
	}
	admin, c := aclServer(t)
	l := mustNew(t, c, locker.Options{})
	other := mustNew(t, admin, locker.Options{})
	claim := func(t *testing.T, slot time.Time) locker.Claim {
		key, meta := keys(t)
		cl := slotClaim(key, meta, slot)
		cl.RingKey = key + ":ring"
		return cl
	}

	t.Run("retried, it wins", func(t *testing.T) {
		cl := claim(t, slot)
		bid := cutShort(t, l, []*redis.Client{admin}, cl)
		lease, err := bid.Obtain(bg)
		if err != nil {
			t.Fatalf("the claim's next attempt: got %v, want it to win", err)
		}
		t.Cleanup(func() { _ = lease.Release(bg) })
		if lease.Fence() != 1 {
			t.Errorf("fence: got %d, want 1", lease.Fence())
		}
		if got := hget(t, admin, cl.MarkKey, "token"); got != bid.Token() {
			t.Errorf("mark token: got %q, want the claim's", got)
		}
		if got := pttl(t, admin, cl.Key); got < cl.TTL-500*time.Millisecond {
			t.Errorf("lease TTL: got %v, want about %v (taken again)", got, cl.TTL)
		}
	})

	t.Run("refused for good, it frees the lease", func(t *testing.T) {
		cl := claim(t, slot)
		cl.Records.Busy = "busy"
		bid := cutShort(t, l, []*redis.Client{admin}, cl)
		// Another replica's claim of the slot finds the lease busy and
		// records the slot skipped.
		if err := tryObtain(other, cl); !errors.Is(err, locker.ErrNotObtained) {
			t.Fatalf("another claim of the slot: got %v, want ErrNotObtained (busy, recorded)", err)
		}
		if _, err := bid.Obtain(bg); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Fatalf("the claim's next attempt: got %v, want ErrSlotClaimed", err)
		}
		if exists(t, admin, cl.Key) {
			t.Errorf("lease after the claim was refused for good: held for %v, want freed", pttl(t, admin, cl.Key))
		}
		if got := hget(t, admin, cl.MarkKey, "end"); got != "busy" {
			t.Errorf("mark end: got %q, want the other claim's busy record", got)
		}
	})

	t.Run("quorum of 3, refused for good, it frees the leases", func(t *testing.T) {
		var admins, users []*redis.Client
		for range 3 {
			a, u := aclServer(t)
			admins, users = append(admins, a), append(users, u)
		}
		lq, otherq := newQuorum(t, users, locker.Options{}), newQuorum(t, admins, locker.Options{})
		cl := claim(t, slot)
		cl.Records.Busy = "busy"
		bid := cutShort(t, lq, admins, cl)
		if err := tryObtain(otherq, cl); !errors.Is(err, locker.ErrNotObtained) {
			t.Fatalf("another claim of the slot: got %v, want ErrNotObtained (busy, recorded)", err)
		}
		if _, err := bid.Obtain(bg); !errors.Is(err, locker.ErrSlotClaimed) {
			t.Fatalf("the claim's next attempt: got %v, want ErrSlotClaimed", err)
		}
		for i, a := range admins {
			if exists(t, a, cl.Key) {
				t.Errorf("node %d: lease after the claim was refused for good: held for %v, want freed", i, pttl(t, a, cl.Key))
			}
		}
	})
}

// TestFinishCutShortByAnError: a finish whose script ended the mark and
// then had the history's ZADD refused (by the ACL) left the outcome in the
// mark only, and its retry, finding the mark ended with its record,
// answered "done": the history never got the run. end_mark now writes the
// history first, so the retry, once ZADD is allowed again, records it.
func TestFinishCutShortByAnError(t *testing.T) {
	t.Parallel()
	admin, c := aclServer(t)
	l := mustNew(t, c, locker.Options{})
	key, meta := keys(t)
	cl := slotClaim(key, meta, time.Now().Truncate(time.Second))
	cl.HistoryKey, cl.HistoryLen, cl.HistoryTTL = key+":history", 10, time.Hour
	lease := mustObtain(t, l, cl)

	setACL(t, []*redis.Client{admin}, "-zadd")
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	err := lease.Finish(ctx, "ok:1")
	cancel()
	setACL(t, []*redis.Client{admin}, "+zadd")
	if !store.ACLRefused(err) {
		t.Errorf("finish without ZADD: got %v, want the ACL's refusal inside the script (a retry that found the mark ended answered done)", err)
	}
	if err := lease.Finish(bg, "ok:1"); err != nil {
		var fe *locker.FinishError
		if !errors.As(err, &fe) || !fe.Recorded {
			t.Fatalf("finish again with ZADD: got %v, want the record written", err)
		}
	}
	if got := lrange(t, admin, cl.HistoryKey); len(got) != 1 || got[0] != "ok:1" {
		t.Errorf("history: got %q, want the run's record once", got)
	}
	if got := hget(t, admin, cl.MarkKey, "end"); got != "ok:1" {
		t.Errorf("mark end: got %q, want the run's record", got)
	}
}

// The ACL user of the tests of scripts cut short by the ACL's refusal.
const aclUser, aclPass = "claimer", "claimer-pw"

// aclServer starts a redis-server whose user aclUser has every right and
// returns the default user's client (admin, which changes the user's
// rights) and the user's, with newClient's settings.
func aclServer(t *testing.T) (admin, c *redis.Client) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Password: "admin-pw",
		Args: []string{"--user", aclUser, "on", ">" + aclPass, "~*", "&*", "+@all"}})
	c = redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: aclUser, Password: aclPass, MaxRetries: -1,
		ContextTimeoutEnabled: true, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return srv.Client(t), c
}

// setACL applies one ACL rule (such as "-setbit") to aclUser on each server.
func setACL(t *testing.T, admins []*redis.Client, rule string) {
	t.Helper()
	for _, a := range admins {
		must(t, a.Do(bg, "acl", "setuser", aclUser, rule).Err())
	}
}

// TestEndCutShortByAnError: the ending scripts free what holds other
// claims off before they write the records that an error could stop. A
// withdrawal whose history write was refused used to leave the lease held
// to its TTL; a plain lock's finish whose SET was refused had already
// deleted the key, so its retry found it free and the record was lost; and
// a replace claim whose PUBLISH was refused (no channel in the user's
// rules) failed after it had set the successor key, and the holder was
// not replaced (or, had the claim been given up without withdrawing, was
// stopped for nothing). Each case fails with the scripts before this
// change.
func TestEndCutShortByAnError(t *testing.T) {
	t.Parallel()
	admin, c := aclServer(t)
	admins := []*redis.Client{admin}
	l := mustNew(t, c, locker.Options{})
	slot := time.Now().Truncate(time.Second)

	t.Run("withdraw without ZADD frees the lease", func(t *testing.T) {
		key, meta := keys(t)
		cl := slotClaim(key, meta, slot)
		cl.HistoryKey, cl.HistoryLen, cl.HistoryTTL = key+":history", 10, time.Hour
		cl.Unwatched = true // a claim won and given up before its run: nothing renews it
		bid, err := l.Bid(cl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bid.Obtain(bg); err != nil {
			t.Fatal(err)
		}
		setACL(t, admins, "-zadd")
		err = bid.Withdraw(bg)
		setACL(t, admins, "+zadd")
		if !store.ACLRefused(err) {
			t.Errorf("withdraw without ZADD: got %v, want the ACL's refusal", err)
		}
		if exists(t, admin, key) {
			t.Errorf("lease after the refused withdrawal: held for %v, want freed", pttl(t, admin, key))
		}
		must(t, bid.Withdraw(bg))
		if got := hget(t, admin, cl.MarkKey, "end"); got != recs.Aborted {
			t.Errorf("mark end after the withdrawal's retry: got %q, want %q", got, recs.Aborted)
		}
		if got := lrange(t, admin, cl.HistoryKey); len(got) != 1 || got[0] != recs.Aborted {
			t.Errorf("history after the withdrawal's retry: got %q, want the aborted record once", got)
		}
	})

	t.Run("a plain lock's finish without SET keeps its record", func(t *testing.T) {
		key, meta := keys(t)
		cl := locker.Claim{Key: key, MetaKey: meta, TTL: 2 * time.Second, Retention: time.Minute}
		lease := mustObtain(t, l, cl)
		setACL(t, admins, "-set")
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		err := lease.Finish(ctx, "ok:plain")
		cancel()
		setACL(t, admins, "+set")
		if !store.ACLRefused(err) {
			t.Errorf("finish without SET: got %v, want the ACL's refusal", err)
		}
		if err := lease.Finish(bg, "ok:plain"); err != nil {
			t.Errorf("finish again with SET: got %v, want the record written", err)
		}
		if got := get(t, admin, key); got != "ok:plain" {
			t.Errorf("lock key: got %q, want the record (taken for the retention)", got)
		}
	})

	t.Run("a replace claim without the channel still replaces", func(t *testing.T) {
		key, meta := keys(t)
		claim := func(slot time.Time) locker.Claim {
			cl := slotClaim(key, meta, slot)
			cl.Replace, cl.NextKey, cl.Channel = true, key+":next", key+":stop"
			return cl
		}
		old := mustObtain(t, mustNew(t, admin, locker.Options{}), claim(slot.Add(-time.Minute)))
		setACL(t, admins, "resetchannels")
		t.Cleanup(func() { setACL(t, admins, "allchannels") })
		done := make(chan error, 1)
		go func() {
			lease, err := l.Obtain(bg, claim(slot.Add(-time.Minute+time.Second)))
			if err == nil {
				err = lease.Release(bg)
			}
			done <- err
		}()
		waitDone(t, old, 10*time.Second) // told at its next renewal, without the message
		must(t, old.Release(bg))
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replace claim without the channel: got %v, want it to take the lease once the holder stopped", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the replace claim did not return within 10s of the holder's release")
		}
	})
}
