package locker

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
)

// TestBatchKeepsEachCallsDeadline: calls pipelined in one batch keep their
// own bounds. A call whose context is about to end is batched with one that
// has time (Redis answers slowly, through a proxy that delays replies): the
// first returns its context's error when that ends, the second still gets
// its reply, instead of both failing at the earliest deadline.
func TestBatchKeepsEachCallsDeadline(t *testing.T) {
	c, p, _ := proxied(t)
	p.Delay(redistest.ToClient, 300*time.Millisecond)
	ln := &newNode(c, false).lanes[laneMain]

	// c0 keeps the lane busy for one delayed round trip, so that the next
	// two calls queue and go out together.
	bg := context.Background()
	c0 := newCall(bg, redis.NewCmd(bg, "ping"), nil, 2*time.Second)
	done0 := make(chan error, 1)
	go func() { done0 <- ln.run(c0) }()
	waitBusy(t, ln)

	short, cancel := context.WithTimeout(bg, 450*time.Millisecond)
	defer cancel()
	c1 := newCall(short, redis.NewCmd(short, "ping"), nil, 2*time.Second)
	c2 := newCall(bg, redis.NewCmd(bg, "ping"), nil, 2*time.Second)
	errs := make(chan error, 2)
	go func() { errs <- ln.run(c1) }()
	go func() { errs <- ln.run(c2) }()
	if err := <-done0; err != nil {
		t.Fatalf("the first call: %v", err)
	}
	var got []error
	for range 2 {
		got = append(got, <-errs)
	}
	ok, expired := 0, 0
	for _, err := range got {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, context.DeadlineExceeded):
			expired++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 || expired != 1 {
		t.Fatalf("batched calls: got %v, want one reply and one context deadline", got)
	}
	if c2.cmd.Err() != nil {
		t.Errorf("the call with time left: got %v, want its reply", c2.cmd.Err())
	}
}

// proxied starts a Redis server behind a proxy that can delay, hold or
// cut its traffic, and returns a client through the proxy (connected,
// closed in t.Cleanup), the proxy and the server.
func proxied(t *testing.T) (*redis.Client, *redistest.Proxy, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, PoolSize: 4, ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return c, p, srv
}

// waitBusy waits until the lane has a call in flight.
func waitBusy(t *testing.T, ln *lane) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln.mu.Lock()
		busy := ln.busy
		ln.mu.Unlock()
		if busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the lane never became busy")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStuck: a Locker is stuck while a call of its claims' lane has waited
// longer than the bound for a reply that Redis holds back, and no longer
// once the reply is in.
func TestStuck(t *testing.T) {
	c, p, _ := proxied(t)
	lk, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const bound = 100 * time.Millisecond
	if lk.Stuck(bound) {
		t.Fatalf("Stuck while idle: got true, want false")
	}
	p.Hold(redistest.ToClient)
	ln := &lk.nodes[0].lanes[laneMain]
	bg := context.Background()
	done := make(chan error, 1)
	go func() { done <- ln.run(newCall(bg, redis.NewCmd(bg, "ping"), nil, 2*time.Second)) }()
	waitBusy(t, ln)
	if lk.Stuck(bound) {
		t.Errorf("Stuck as the call is written: got true, want false")
	}
	time.Sleep(2 * bound)
	if !lk.Stuck(bound) {
		t.Errorf("Stuck with its reply held %v: got false, want true", 2*bound)
	}
	p.Release(redistest.ToClient)
	if err := <-done; err != nil {
		t.Fatalf("the held call: %v", err)
	}
	if lk.Stuck(bound) {
		t.Errorf("Stuck once the reply is in: got true, want false")
	}
}

// TestNoScriptLoadsEachScriptOnce: a batch whose scripts the server does
// not have (a new or restarted Redis: its script cache is empty) is
// answered NOSCRIPT, call by call; it is sent again with each script's
// source once, as EVAL ahead of the other calls of that script, which go
// as EVALSHA, and every call gets its own reply.
func TestNoScriptLoadsEachScriptOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	plus, minus := newScript("", `return tonumber(A.n)`), newScript("", `return -tonumber(A.n)`)
	const n = 60
	batch := make([]*call, n)
	for i := range batch {
		s := plus
		if i%2 == 1 {
			s = minus
		}
		batch[i] = newCall(ctx, redis.NewCmd(ctx, s.args().arg("n", strconv.Itoa(i)).line()...), s, 5*time.Second)
	}
	before := netInput(t, c)
	(&newNode(c, false).lanes[laneMain]).execBatch(batch)
	sent := netInput(t, c) - before

	for i, cl := range batch {
		want := int64(i)
		if i%2 == 1 {
			want = -want
		}
		if got, err := cl.cmd.Int64(); err != nil || got != want {
			t.Errorf("call %d: got %d, %v, want %d", i, got, err, want)
		}
	}
	stats := c.Info(ctx, "commandstats").Val()
	evals, shas := redistest.CommandCalls(t, stats, "eval"), redistest.CommandCalls(t, stats, "evalsha")
	t.Logf("%d calls of 2 scripts (%d B of source each): %d EVAL, %d EVALSHA, %d B received by Redis", n, len(plus.src), evals, shas, sent)
	if evals != 2 {
		t.Errorf("EVAL calls: got %d, want 2 (one per script; %d when every call is sent again with its source)", evals, n)
	}
	if want := n + n - 2; shas != want {
		t.Errorf("EVALSHA calls: got %d, want %d (%d answered NOSCRIPT, then the %d not sent as EVAL)", shas, want, n, n-2)
	}
}

// netInput is the bytes Redis has read from its clients.
func netInput(t *testing.T, c *redis.Client) int {
	t.Helper()
	return redistest.InfoInt(t, c.Info(context.Background(), "stats").Val(), "total_net_input_bytes:")
}

// TestRecordsWaitBehindOtherCalls: skip records queued in a lane go out
// behind the other calls queued with them, and still take recordShare of
// each batch while those wait. Calls queue, records and others
// alternating, while the lane waits for a reply that the proxy holds; the
// order in which Redis runs them is the order of their pushes to one list.
func TestRecordsWaitBehindOtherCalls(t *testing.T) {
	c, p, _ := proxied(t)
	bg := context.Background()
	ln := &newNode(c, false).lanes[laneMain]
	p.Hold(redistest.ToClient)
	held := newCall(bg, redis.NewCmd(bg, "ping"), nil, 5*time.Second)
	heldDone := make(chan error, 1)
	go func() { heldDone <- ln.run(held) }()
	waitBusy(t, ln)

	const n = 200 // of each kind
	done := make(chan *call, 2*n)
	for i := range n {
		for _, name := range []string{"R" + strconv.Itoa(i), "N" + strconv.Itoa(i)} {
			cl := newCall(bg, redis.NewCmd(bg, "rpush", "order", name), nil, 5*time.Second)
			cl.done = done
			if name[0] == 'R' {
				cl.prio = prioRecord
			}
			ln.send(cl)
		}
	}
	p.Release(redistest.ToClient)
	if err := <-heldDone; err != nil {
		t.Fatalf("the held call: %v", err)
	}
	for range 2 * n {
		if cl := <-done; cl.cmd.Err() != nil {
			t.Fatalf("%v: %v", cl.cmd.Args(), cl.cmd.Err())
		}
	}

	// The batches: 96 others and 32 records, twice; the last 8 others and
	// 120 records; the last 16 records.
	var want []string
	add := func(kind string, from, to int) {
		for i := from; i < to; i++ {
			want = append(want, kind+strconv.Itoa(i))
		}
	}
	add("N", 0, 96)
	add("R", 0, 32)
	add("N", 96, 192)
	add("R", 32, 64)
	add("N", 192, 200)
	add("R", 64, 200)
	got, err := c.LRange(bg, "order", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the order Redis ran the calls in:\ngot  %v\nwant %v", got, want)
	}
}

// TestSkipRecordsWaitBehindClaims: in quorum mode, a claim made while a
// recorder's burst of skip records is queued (the masters answer slowly,
// through proxies that delay their replies) goes out in the next batch,
// not behind the burst: when its lease is in, most of the burst's first
// round is still queued. Then every record is written. With one node the
// records keep their place in the queue.
func TestSkipRecordsWaitBehindClaims(t *testing.T) {
	bg := context.Background()
	var clients []Client
	var proxies []*redistest.Proxy
	var direct *redis.Client // master 0, not through its proxy
	for i := range 3 {
		c, p, srv := proxied(t)
		if i == 0 {
			direct = redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
			t.Cleanup(func() { _ = direct.Close() })
		}
		clients, proxies = append(clients, c), append(proxies, p)
	}
	lk, err := NewQuorum(clients, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	now := time.Now()
	slot := now.Truncate(time.Second).Add(-time.Minute)
	skips := func(prefix string) ([]Skip, []string) {
		ss, marks := make([]Skip, n), make([]string, n)
		for i := range ss {
			job := "redcron:" + prefix + strconv.Itoa(i)
			marks[i] = job + ":slot"
			ss[i] = Skip{MarkKey: marks[i], MetaKey: job + ":meta", Slot: slot, Record: "skipped:outage",
				Retention: time.Hour, NotBefore: now.Add(-time.Second), NotAfter: now.Add(time.Minute)}
		}
		return ss, marks
	}
	// The masters learn the scripts (batch.lua's too) before their replies
	// come late: a call answered NOSCRIPT takes a second round trip.
	warm, _ := skips("warm")
	for i, err := range lk.RecordSkips(bg, warm) {
		if err != nil {
			t.Fatalf("warm-up skip %d: %v", i, err)
		}
	}
	for _, p := range proxies {
		p.Delay(redistest.ToClient, 200*time.Millisecond)
	}

	ss, marks := skips("skip")
	recorded := make(chan []error, 1)
	go func() { recorded <- lk.RecordSkips(bg, ss) }()
	ln := &lk.nodes[0].lanes[laneMain]
	probes := func() (queued int) {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		for _, q := range [][]*call{ln.queue, ln.records} {
			for _, c := range q {
				if slices.Contains(c.cmd.Args(), any("probe")) {
					queued++
				}
			}
		}
		return queued
	}
	deadline := time.Now().Add(5 * time.Second)
	for queued := probes(); queued < n-maxBatch; queued = probes() {
		if time.Now().After(deadline) {
			t.Fatalf("skip probes queued: got %d, want at least %d", queued, n-maxBatch)
		}
		time.Sleep(time.Millisecond)
	}

	lease, err := lk.Obtain(bg, Claim{Key: "redcron:claimed:run", MetaKey: "redcron:claimed:meta", TTL: 5 * time.Second})
	if err != nil {
		t.Fatalf("Obtain: %v", err)
	}
	left := probes()
	t.Logf("skip probes still queued on master 0 when the claim's lease was in: %d of %d", left, n)
	if left < n/3 {
		t.Errorf("skip probes still queued when the claim's lease was in: got %d of %d, want most (the claim went out behind them)", left, n)
	}
	if err := lease.Release(bg); err != nil {
		t.Errorf("Release: %v", err)
	}
	for i, err := range <-recorded {
		if err != nil {
			t.Fatalf("skip %d: %v", i, err)
		}
	}
	if got, err := direct.Exists(bg, marks...).Result(); err != nil || got != n {
		t.Errorf("skip records written on master 0: got %d (%v), want %d", got, err, n)
	}

	t.Run("one node", func(t *testing.T) {
		c, p, _ := proxied(t)
		one, err := New(c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p.Hold(redistest.ToClient)
		ss, _ := skips("one")
		recorded := make(chan []error, 1)
		go func() { recorded <- one.RecordSkips(bg, ss[:maxBatch]) }()
		ln := &one.nodes[0].lanes[laneMain]
		waitBusy(t, ln)
		time.Sleep(50 * time.Millisecond)
		ln.mu.Lock()
		normal, records := len(ln.queue), len(ln.records)
		ln.mu.Unlock()
		p.Release(redistest.ToClient)
		<-recorded
		if records != 0 {
			t.Errorf("skip records queued behind the others on one node: got %d (and %d in order), want 0", records, normal)
		}
	})
}

// TestBacklog: a Locker's backlog is the age of the calls waiting in its
// claims' lane on the majority-th node while more than a batch waits there
// and the replies flow, late (an overload: a proxy delays each reply); a
// batch or less waiting is none, and so is a queue behind a reply that
// the proxy holds (a node that does not answer). It ends once the replies
// are in.
func TestBacklog(t *testing.T) {
	const delayed, held = 1, 2
	cases := []struct {
		name        string
		fault       []int // per node: none, delayed or held
		calls       int   // calls made at once on each faulty node
		wantBacklog bool
	}{
		{"one node, ten batches delayed", []int{delayed}, 10 * maxBatch, true},
		{"one node, a batch delayed", []int{delayed}, maxBatch, false},
		{"one node, three batches held", []int{held}, 3 * maxBatch, false},
		{"a minority of three delayed", []int{0, delayed, 0}, 10 * maxBatch, false},
		{"a majority of three delayed", []int{delayed, 0, delayed}, 10 * maxBatch, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bg := context.Background()
			clients := make([]Client, len(tc.fault))
			proxies := make([]*redistest.Proxy, len(tc.fault))
			for i := range tc.fault {
				clients[i], proxies[i], _ = proxied(t)
			}
			var lk *Locker
			var err error
			if len(clients) == 1 {
				lk, err = New(clients[0], Options{})
			} else {
				lk, err = NewQuorum(clients, Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			var calls []*call
			for i, f := range tc.fault {
				switch f {
				case 0:
					continue
				case delayed:
					proxies[i].Delay(redistest.ToClient, 100*time.Millisecond)
				case held:
					proxies[i].Hold(redistest.ToClient)
				}
				ln := &lk.nodes[i].lanes[laneMain]
				for range tc.calls {
					cl := newCall(bg, redis.NewCmd(bg, "ping"), nil, 5*time.Second)
					cl.done = make(chan *call, 1)
					ln.send(cl)
					calls = append(calls, cl)
				}
				waitBusy(t, ln)
			}
			const wait = 450 * time.Millisecond
			time.Sleep(wait)
			got := lk.Backlog()
			if tc.wantBacklog && got < 300*time.Millisecond {
				t.Errorf("Backlog: got %v, want at least 300ms (calls waiting %v)", got, wait)
			}
			if !tc.wantBacklog && got != 0 {
				t.Errorf("Backlog: got %v, want 0", got)
			}
			for i := range proxies {
				proxies[i].Delay(redistest.ToClient, 0)
				proxies[i].Release(redistest.ToClient)
			}
			for _, cl := range calls {
				if <-cl.done; cl.cmd.Err() != nil {
					t.Fatalf("a queued call: %v", cl.cmd.Err())
				}
			}
			if got := lk.Backlog(); got != 0 {
				t.Errorf("Backlog once the replies are in: got %v, want 0", got)
			}
		})
	}
}
