package store

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// TestDrift checks which jobs drift: defined differently, or not on every
// live replica; replicas with one config hash agree on every job.
func TestDrift(t *testing.T) {
	a := Replica{Replica: "a", ConfigHash: "h1", Jobs: map[string]string{"x": "1", "y": "2", "z": "3"}}
	b := Replica{Replica: "b", ConfigHash: "h2", Jobs: map[string]string{"x": "1", "y": "9"}}
	c := Replica{Replica: "c", ConfigHash: "h1", Jobs: map[string]string{"x": "1", "y": "2", "z": "3"}}
	noHash := Replica{Replica: "d", Jobs: map[string]string{"x": "5"}}
	noHash2 := Replica{Replica: "e", Jobs: map[string]string{"x": "6"}}
	for _, tt := range []struct {
		name string
		rs   []Replica
		want map[string]bool // the jobs that drift
	}{
		{"none", nil, map[string]bool{}},
		{"one replica", []Replica{b}, map[string]bool{}},
		{"same hash", []Replica{a, c}, map[string]bool{}},
		{"fingerprint and missing", []Replica{a, b}, map[string]bool{"y": true, "z": true}},
		{"three, one differs", []Replica{a, b, c}, map[string]bool{"y": true, "z": true}},
		{"no hash: jobs compared", []Replica{noHash, noHash2}, map[string]bool{"x": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]bool{}
			for job, d := range Drift(tt.rs) {
				if d {
					got[job] = true
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got drifting %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReplicasDecodesChanges checks the registrations Replicas keeps
// decoded, on a real Redis: a registration that changes is read anew, one
// that is removed is gone.
func TestReplicasDecodesChanges(t *testing.T) {
	s := startStore(t)
	ctx := context.Background()
	beat := func(r Replica) {
		t.Helper()
		if err := s.Heartbeat(ctx, NewRegistration(r), time.Minute); err != nil {
			t.Fatalf("heartbeat %s: %v", r.Replica, err)
		}
	}
	jobsOf := func() map[string]map[string]string {
		t.Helper()
		rs, err := s.Replicas(ctx)
		if err != nil {
			t.Fatalf("replicas: %v", err)
		}
		out := map[string]map[string]string{}
		for _, r := range rs {
			out[r.Replica] = r.Jobs
		}
		return out
	}
	beat(Replica{Replica: "a", ConfigHash: "h1", Jobs: map[string]string{"x": "1"}})
	beat(Replica{Replica: "b", ConfigHash: "h1", Jobs: map[string]string{"x": "1"}})
	if got := jobsOf(); len(got) != 2 || got["b"]["x"] != "1" {
		t.Fatalf("first read: got %v, want a and b with x=1", got)
	}
	beat(Replica{Replica: "b", ConfigHash: "h2", Jobs: map[string]string{"x": "2", "y": "3"}})
	if got := jobsOf(); got["b"]["x"] != "2" || got["b"]["y"] != "3" || got["a"]["x"] != "1" {
		t.Fatalf("after b changed: got %v, want b with x=2, y=3 and a unchanged", got)
	}
	if err := s.Unregister(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := jobsOf(); len(got) != 1 || got["a"] == nil {
		t.Fatalf("after b left: got %v, want a only", got)
	}
	s.read.mu.Lock()
	_, kept := s.read.byID["b"]
	s.read.mu.Unlock()
	if kept {
		t.Errorf("b's decoded registration is kept after it left, want it forgotten")
	}
}

// TestReplicasShareJobs checks that replicas with the same jobs share one
// decoded map of them, and that one whose jobs differ keeps its own.
func TestReplicasShareJobs(t *testing.T) {
	s := startStore(t)
	ctx := context.Background()
	same := func() map[string]string { return map[string]string{"x": "1", "y": "2"} }
	for _, r := range []Replica{
		{Replica: "a", ConfigHash: "h1", Jobs: same()},
		{Replica: "b", ConfigHash: "h1", Jobs: same()},
		{Replica: "c", ConfigHash: "h1", Jobs: same()},
		{Replica: "d", ConfigHash: "h2", Jobs: map[string]string{"x": "1", "y": "3"}},
	} {
		if err := s.Heartbeat(ctx, NewRegistration(r), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	s.read = registrations{} // as another process reads them: none decoded yet
	rs, err := s.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Replica{}
	for _, r := range rs {
		byID[r.Replica] = r
	}
	ptr := func(id string) uintptr { return reflect.ValueOf(byID[id].Jobs).Pointer() }
	if ptr("a") != ptr("b") || ptr("b") != ptr("c") {
		t.Errorf("a, b and c define the same jobs: got separate maps, want one shared")
	}
	if ptr("d") == ptr("a") || byID["d"].Jobs["y"] != "3" {
		t.Errorf("d defines y differently: got %v (shared: %v), want its own map with y=3", byID["d"].Jobs, ptr("d") == ptr("a"))
	}
	if got := s.read.jobsDecoded; got != 2 {
		t.Errorf("got %d jobs maps decoded, want 2 (one for a, b and c, one for d)", got)
	}

	// A replica that registered itself decodes no peer whose jobs are
	// its own, even under another config hash (another prefix).
	if err := s.Heartbeat(ctx, NewRegistration(Replica{Replica: "e", ConfigHash: "h3", Jobs: same()}), time.Minute); err != nil {
		t.Fatal(err)
	}
	own := NewRegistration(Replica{Replica: "a", ConfigHash: "h1", Jobs: same()})
	s.read = registrations{} // a's process: its own registration only
	s.read.put(own)
	if rs, err = s.Replicas(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		byID[r.Replica] = r
	}
	if ptr("e") != reflect.ValueOf(own.Jobs).Pointer() || ptr("b") != ptr("e") || !maps.Equal(byID["e"].Jobs, same()) {
		t.Errorf("b, c and e define a's jobs: got maps of their own, want a's")
	}
	if got := s.read.jobsDecoded; got != 1 {
		t.Errorf("got %d jobs maps decoded, want 1 (d's)", got)
	}
}

// startStore is a Store on a fresh redis-server, stopped at cleanup.
func startStore(t *testing.T) *Store {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	lk, err := locker.New(srv.Client(t), locker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return New(lk, "")
}

// getCounter counts the GET commands whose key contains part, in
// pipelines and alone.
type getCounter struct {
	part string
	n    atomic.Int64
}

func (g *getCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (g *getCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		g.count(cmd)
		return next(ctx, cmd)
	}
}

func (g *getCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			g.count(c)
		}
		return next(ctx, cmds)
	}
}

func (g *getCounter) count(cmd redis.Cmder) {
	if args := cmd.Args(); len(args) == 2 && cmd.Name() == "get" && strings.Contains(fmt.Sprint(args[1]), g.part) {
		g.n.Add(1)
	}
}

// TestReplicasReadChangesOnly checks, on a real Redis, that a replica
// reads a peer's registration only when its digest changed, and every
// time from a peer that writes no digest (an older version).
func TestReplicasReadChangesOnly(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	store := func(hook redis.Hook) *Store {
		t.Helper()
		c := srv.Client(t)
		if hook != nil {
			c.AddHook(hook)
		}
		lk, err := locker.New(c, locker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return New(lk, "")
	}
	ctx := context.Background()
	writer := store(nil)
	beat := func(r Replica) {
		t.Helper()
		if err := writer.Heartbeat(ctx, NewRegistration(r), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	raws := &getCounter{part: ":replica:"}
	reader := store(raws)
	read := func(want map[string]string) int64 {
		t.Helper()
		before := raws.n.Load()
		rs, err := reader.Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range rs {
			got[r.Replica] = r.Jobs["x"]
		}
		if !maps.Equal(got, want) {
			t.Fatalf("got replicas' x %v, want %v", got, want)
		}
		return raws.n.Load() - before
	}
	beat(Replica{Replica: "a", Jobs: map[string]string{"x": "1"}})
	beat(Replica{Replica: "b", Jobs: map[string]string{"x": "1"}})
	for _, step := range []struct {
		name     string
		change   func()
		want     map[string]string
		wantGets int64
	}{
		{"first read", func() {}, map[string]string{"a": "1", "b": "1"}, 2},
		{"nothing changed", func() {}, map[string]string{"a": "1", "b": "1"}, 0},
		{"b beats again, unchanged", func() { beat(Replica{Replica: "b", Jobs: map[string]string{"x": "1"}}) }, map[string]string{"a": "1", "b": "1"}, 0},
		{"b changed", func() { beat(Replica{Replica: "b", Jobs: map[string]string{"x": "2"}}) }, map[string]string{"a": "1", "b": "2"}, 1},
		{"c writes no digest", func() {
			c := srv.Client(t)
			raw := NewRegistration(Replica{Replica: "c", Jobs: map[string]string{"x": "3"}}).raw
			if err := c.Set(ctx, writer.replicaKey("c"), raw, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.ZAdd(ctx, writer.replicasKey(), redis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: "c"}).Err(); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"a": "1", "b": "2", "c": "3"}, 1},
		{"c is read each time", func() {}, map[string]string{"a": "1", "b": "2", "c": "3"}, 1},
		{"a's digest lost", func() { srv.Client(t).Del(ctx, writer.digestKey("a")) }, map[string]string{"a": "1", "b": "2", "c": "3"}, 2},
		// On a Cluster a reader may see a digest before its registration.
		{"b's digest ahead of its registration", func() {
			next := NewRegistration(Replica{Replica: "b", Jobs: map[string]string{"x": "4"}})
			if err := srv.Client(t).Set(ctx, writer.digestKey("b"), next.digest, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}, map[string]string{"a": "1", "b": "2", "c": "3"}, 3},
		{"b's registration catches up", func() { beat(Replica{Replica: "b", Jobs: map[string]string{"x": "4"}}) }, map[string]string{"a": "1", "b": "4", "c": "3"}, 3},
	} {
		step.change()
		if got := read(step.want); got != step.wantGets {
			t.Errorf("%s: got %d registrations read, want %d", step.name, got, step.wantGets)
		}
	}
}

// TestReplicasWithoutMGET checks, on a real Redis, that a replica whose ACL
// user predates MGET in ACLCommands (refused with NOPERM) still reads the
// live replicas, one GET a digest.
func TestReplicasWithoutMGET(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	rules := []string{"setuser", "old", "on", ">old-password"}
	for _, r := range ACLRules(DefaultPrefix) {
		if r != "+mget" {
			rules = append(rules, r)
		}
	}
	args := []any{"acl"}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: "old", Password: "old-password",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Do(ctx, "mget", DefaultPrefix+":x").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("MGET as the old user: got %v, want NOPERM", err)
	}
	lk, err := locker.New(c, locker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(lk, "")
	for _, id := range []string{"a", "b"} {
		if err := s.Heartbeat(ctx, NewRegistration(Replica{Replica: id, Jobs: map[string]string{"x": id}}), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		rs, err := s.Replicas(ctx)
		if err != nil || len(rs) != 2 || rs[0].Jobs["x"] != "a" || rs[1].Jobs["x"] != "b" {
			t.Fatalf("read %d: got %v, %v; want a and b", i+1, rs, err)
		}
	}
}

// TestReplicasReadChangesOnlyQuorum checks the digests on a quorum of 3
// real Redis masters, read at once: a changed registration is read from
// one to all of them (a node whose digest is checked after another's
// read finds it decoded), and from none while it is unchanged.
func TestReplicasReadChangesOnlyQuorum(t *testing.T) {
	ctx := context.Background()
	var servers []*redistest.Server
	for range 3 {
		servers = append(servers, redistest.Start(t, redistest.Options{}))
	}
	store := func(hook redis.Hook) *Store {
		t.Helper()
		var clients []locker.Client
		for _, srv := range servers {
			c := srv.Client(t)
			if hook != nil {
				c.AddHook(hook)
			}
			clients = append(clients, c)
		}
		lk, err := locker.NewQuorum(clients, locker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return New(lk, "")
	}
	writer := store(nil)
	raws := &getCounter{part: ":replica:"}
	reader := store(raws)
	beat := func(id, x string) {
		t.Helper()
		if err := writer.Heartbeat(ctx, NewRegistration(Replica{Replica: id, Jobs: map[string]string{"x": x}}), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	beat("a", "1")
	beat("b", "1")
	for _, step := range []struct {
		name             string
		change           func()
		want             map[string]string
		minGets, maxGets int64
	}{
		{"first read", func() {}, map[string]string{"a": "1", "b": "1"}, 2, 6},
		{"nothing changed", func() {}, map[string]string{"a": "1", "b": "1"}, 0, 0},
		{"b changed on every node", func() { beat("b", "2") }, map[string]string{"a": "1", "b": "2"}, 1, 3},
		{"then unchanged", func() {}, map[string]string{"a": "1", "b": "2"}, 0, 0},
	} {
		step.change()
		before := raws.n.Load()
		rs, err := reader.Replicas(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := map[string]string{}
		for _, r := range rs {
			got[r.Replica] = r.Jobs["x"]
		}
		if !maps.Equal(got, step.want) {
			t.Errorf("%s: got replicas' x %v, want %v", step.name, got, step.want)
		}
		if n := raws.n.Load() - before; n < step.minGets || n > step.maxGets {
			t.Errorf("%s: got %d registrations read, want %d to %d", step.name, n, step.minGets, step.maxGets)
		}
	}
}

// TestReplicasNewestQuorum: on a quorum of 3 masters, a node that missed a
// replica's heartbeat (its proxy cut the writer off) keeps the previous
// registration; Replicas reports the newest copy, wherever the stale node
// is in node order: the later process start, then the later generation.
func TestReplicasNewestQuorum(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		stale      int // the node that misses the second heartbeat
		old, fresh Replica
	}{
		{"reload, stale node last", 2,
			Replica{Replica: "a", Started: t0, Generation: 1, Jobs: map[string]string{"x": "1"}},
			Replica{Replica: "a", Started: t0, Generation: 2, Jobs: map[string]string{"x": "2"}}},
		{"reload, stale node first", 0,
			Replica{Replica: "a", Started: t0, Generation: 1, Jobs: map[string]string{"x": "1"}},
			Replica{Replica: "a", Started: t0, Generation: 2, Jobs: map[string]string{"x": "2"}}},
		{"restart, stale node last", 2,
			Replica{Replica: "a", Started: t0, Generation: 5, Jobs: map[string]string{"x": "1"}},
			Replica{Replica: "a", Started: t0.Add(time.Minute), Generation: 1, Jobs: map[string]string{"x": "2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var proxies []*redistest.Proxy
			var direct, proxied []locker.Client
			for range 3 {
				srv := redistest.Start(t, redistest.Options{})
				p := redistest.StartProxyFor(t, srv)
				c := redis.NewClient(&redis.Options{
					Addr: p.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
					MaxRetries: -1, ContextTimeoutEnabled: true,
				})
				t.Cleanup(func() { _ = c.Close() })
				proxies, direct, proxied = append(proxies, p), append(direct, srv.Client(t)), append(proxied, c)
			}
			quorum := func(clients []locker.Client) *Store {
				lk, err := locker.NewQuorum(clients, locker.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return New(lk, "")
			}
			writer, reader := quorum(proxied), quorum(direct)
			if err := writer.Heartbeat(ctx, NewRegistration(tc.old), time.Minute); err != nil {
				t.Fatal(err)
			}
			proxies[tc.stale].Block(true)
			if err := writer.Heartbeat(ctx, NewRegistration(tc.fresh), time.Minute); err != nil {
				t.Fatalf("heartbeat with node %d cut off: %v (a majority answered)", tc.stale, err)
			}
			proxies[tc.stale].Block(false)
			if got := direct[tc.stale].(*redis.Client).Get(ctx, writer.digestKey("a")).Val(); got != NewRegistration(tc.old).digest {
				t.Fatalf("node %d's digest: got %q, want the old registration's (it missed the heartbeat)", tc.stale, got)
			}
			for i := range 3 { // the cache must not change the answer
				rs, err := reader.Replicas(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) != 1 || rs[0].Jobs["x"] != "2" || rs[0].Generation != tc.fresh.Generation {
					t.Errorf("read %d: got %+v, want the fresh registration (x=2, generation %d)", i, rs, tc.fresh.Generation)
				}
			}
		})
	}
}
