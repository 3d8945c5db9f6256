package locker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// exampleAddr is the address of the package's shared redis-server, started
// in TestMain, for the Example functions (which cannot start one).
var exampleAddr string

func TestMain(m *testing.M) {
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exampleAddr = srv.Addr()
	// Killed nodes are part of the tests; keep go-redis's dial complaints quiet.
	redis.SetLogger(quiet{})
	goleak.VerifyTestMain(stopAfter{m, srv})
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// stopAfter stops the shared server after the tests and before goleak looks.
type stopAfter struct {
	m   *testing.M
	srv *redistest.Server
}

func (s stopAfter) Run() int {
	code := s.m.Run()
	s.srv.Stop()
	return code
}

var bg = context.Background()

// recs are the skip records the tests' claims write; opaque to the locker.
var recs = locker.Records{
	Busy:    "skipped:overlap",
	Paused:  "skipped:paused",
	Late:    "skipped:late",
	Aborted: "skipped:aborted",
}

// newClient returns a client for s with the settings the locker expects
// (no go-redis retries, context deadlines on the socket), closed in
// t.Cleanup.
func newClient(t testing.TB, s *redistest.Server) *redis.Client {
	t.Helper()
	return clientAt(t, s.Addr())
}

// viaProxy returns a client for s through a new proxy, with newClient's
// settings (both closed in t.Cleanup), and the proxy, which can hold or
// cut the client's traffic.
func viaProxy(t testing.TB, s *redistest.Server) (*redis.Client, *redistest.Proxy) {
	t.Helper()
	p := redistest.StartProxyFor(t, s)
	return clientAt(t, p.Addr()), p
}

// clientAt is newClient for the server at addr.
func clientAt(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		ReadTimeout:           time.Second,
		WriteTimeout:          time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// keys returns a claim's lease and meta keys under one hash tag unique to
// the test.
func keys(t *testing.T) (key, meta string) {
	t.Helper()
	tag := "{" + t.Name() + "}"
	return "redcron:" + tag + ":run", "redcron:" + tag + ":meta"
}

// slotClaim is a slot claim of key/meta for slot, with a mark of its own,
// the test records and a 2s TTL.
func slotClaim(key, meta string, slot time.Time) locker.Claim {
	return locker.Claim{
		Key: key, MetaKey: meta, TTL: 2 * time.Second,
		MarkKey: markOf(key, slot), MarkTTL: time.Minute, Retention: time.Hour,
		Running: "running", Slot: slot, Records: recs,
	}
}

// markOf is the mark key of slot under key's hash tag.
func markOf(key string, slot time.Time) string {
	return key + ":slot:" + unix(slot)
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func newQuorum(t testing.TB, clients []*redis.Client, opts locker.Options) *locker.Locker {
	t.Helper()
	cs := make([]locker.Client, len(clients))
	for i, c := range clients {
		cs[i] = c
	}
	l, err := locker.NewQuorum(cs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustObtain(t *testing.T, l *locker.Locker, c locker.Claim) *locker.Lease {
	t.Helper()
	lease, err := l.Obtain(bg, c)
	if err != nil {
		t.Fatalf("Obtain(%q): %v", c.Key, err)
	}
	t.Cleanup(func() { _ = lease.Release(bg) })
	return lease
}

// tryObtain is Obtain of a claim that the test expects to be refused: a
// lease it got anyway is released at once, so that no watchdog outlives
// the test, and the error is nil.
func tryObtain(l *locker.Locker, c locker.Claim) error {
	lease, err := l.Obtain(bg, c)
	if err == nil {
		_ = lease.Release(bg)
	}
	return err
}

// waitDone waits up to limit for the lease's Ctx to end and returns how
// long it took.
func waitDone(t *testing.T, l *locker.Lease, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-l.Done():
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("lease %q still held after %v, want it ended", l.Key(), limit)
		return 0
	}
}

func get(t testing.TB, c *redis.Client, key string) string {
	t.Helper()
	v, err := c.Get(bg, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

// hget is HGET key field, "" when absent.
func hget(t testing.TB, c *redis.Client, key, field string) string {
	t.Helper()
	v, err := c.HGet(bg, key, field).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("HGET %s %s: %v", key, field, err)
	}
	return v
}

func hexists(t testing.TB, c *redis.Client, key, field string) bool {
	t.Helper()
	ok, err := c.HExists(bg, key, field).Result()
	if err != nil {
		t.Fatalf("HEXISTS %s %s: %v", key, field, err)
	}
	return ok
}

func hgetall(t testing.TB, c *redis.Client, key string) map[string]string {
	t.Helper()
	m, err := c.HGetAll(bg, key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	return m
}

func pttl(t testing.TB, c *redis.Client, key string) time.Duration {
	t.Helper()
	d, err := c.PTTL(bg, key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

func exists(t testing.TB, c *redis.Client, key string) bool {
	t.Helper()
	n, err := c.Exists(bg, key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// lrange reads a history (a sorted set by slot), newest first.
func lrange(t testing.TB, c *redis.Client, key string) []string {
	t.Helper()
	v, err := c.ZRevRange(bg, key, 0, -1).Result()
	if err != nil {
		t.Fatalf("ZREVRANGE %s: %v", key, err)
	}
	return v
}

// must fails the test on a Redis error of a setup command.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runningMark checks that mark holds lease's running claim: its token and
// fence, the running record, and no final record.
func runningMark(t testing.TB, c *redis.Client, mark string, lease *locker.Lease, running string) {
	t.Helper()
	m := hgetall(t, c, mark)
	want := strconv.FormatInt(lease.Fence(), 10)
	if m["token"] != lease.Token() || m["fence"] != want || m["run"] != running {
		t.Errorf("mark %s: got token %q fence %q run %q, want %q %q %q", mark, m["token"], m["fence"], m["run"], lease.Token(), want, running)
	}
	if e, ok := m["end"]; ok {
		t.Errorf("mark %s: got end %q, want none while running", mark, e)
	}
}

// waitFor polls cond every 10ms until it holds, failing after limit.
func waitFor(t testing.TB, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition still false after %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mustNew is locker.New for a client the test built correctly.
func mustNew(tb testing.TB, c locker.Client, opts locker.Options) *locker.Locker {
	tb.Helper()
	l, err := locker.New(c, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// TestNewRefusesRetryingClients: a client that retries commands itself,
// or whose calls outlive their context on the socket, is refused.
func TestNewRefusesRetryingClients(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts redis.Options
		ok   bool
	}{
		{"as the locker needs", redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}, true},
		{"go-redis defaults: 3 retries", redis.Options{ContextTimeoutEnabled: true}, false},
		{"no context timeout", redis.Options{MaxRetries: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Addr = "127.0.0.1:1"
			c := redis.NewClient(&o)
			defer c.Close()
			_, err := locker.New(c, locker.Options{})
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, locker.ErrInvalid)) {
				t.Errorf("New: got %v, want ok %v (else ErrInvalid)", err, tc.ok)
			}
			if _, err := locker.NewQuorum([]locker.Client{c, c, c}, locker.Options{}); (err == nil) != tc.ok {
				t.Errorf("NewQuorum: got %v, want ok %v", err, tc.ok)
			}
		})
	}
}
