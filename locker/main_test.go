package locker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// keys returns a claim's lease and fence keys under one hash tag unique to
// the test.
func keys(t *testing.T) (key, fence string) {
	t.Helper()
	tag := "{" + t.Name() + "}"
	return "redcron:" + tag + ":run", "redcron:" + tag + ":fence"
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

// waitDone waits up to limit for the lease to end and returns how long it
// took.
func waitDone(t *testing.T, l *locker.Lease, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-l.Done():
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("lease %q still held after %v, want it lost", l.Key(), limit)
		return 0
	}
}

func get(t *testing.T, c redis.UniversalClient, key string) string {
	t.Helper()
	v, err := c.Get(bg, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET %s: %v", key, err)
	}
	return v
}

func pttl(t *testing.T, c redis.UniversalClient, key string) time.Duration {
	t.Helper()
	d, err := c.PTTL(bg, key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

func exists(t *testing.T, c redis.UniversalClient, key string) bool {
	t.Helper()
	n, err := c.Exists(bg, key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}
