package embedredis

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTTLFollowsRealTime checks that a key set with PX expires without
// anyone fast-forwarding the server: leases depend on it.
func TestTTLFollowsRealTime(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Exists(ctx, "k").Result(); n != 1 {
		t.Fatalf("right after SET PX: got exists=%d, want 1", n)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, err := c.Exists(ctx, "k").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("key with a 150ms TTL still exists after 3s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAddrTaken(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if _, err := Start(s.Addr()); err == nil {
		t.Fatalf("second Start on %s: got nil error, want address in use", s.Addr())
	}
}

// TestVerify: Verify accepts an embedded server Start started, and nothing
// else answering on a port: not a real redis-server (with or without a
// marker key of its own), not a server whose marker file is stale, not
// a closed server.
func TestVerify(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ctx := context.Background()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Joinable() {
		t.Fatal("Joinable() = false, want true: the marker file was not written")
	}
	if err := Verify(ctx, s.Addr()); err != nil {
		t.Fatalf("Verify(our server) = %v, want nil", err)
	}

	// A real redis-server on a port: no marker file for it.
	rs := redistest.Start(t, redistest.Options{})
	// Same, with a marker key of its own and a stale marker file (a trial
	// server that once ran on that port).
	forged := redistest.Start(t, redistest.Options{})
	if err := forged.Client(t).Set(ctx, MarkerKey, "guessed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	path, err := markerPath(forged.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeMarker(path, "the-old-servers-marker"); err != nil {
		t.Fatal(err)
	}
	closed, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr()
	closed.Close()

	tests := []struct{ name, addr string }{
		{"redis-server on the port", rs.Addr()},
		{"redis-server with a forged marker key and a stale marker file", forged.Addr()},
		{"closed embedded server", closedAddr},
		{"nobody on the port", "127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(ctx, tt.addr); !errors.Is(err, ErrNotEmbedded) {
				t.Errorf("Verify(%s) = %v, want ErrNotEmbedded", tt.addr, err)
			}
		})
	}
	s.Close()
	if _, err := os.Stat(s.file); !os.IsNotExist(err) {
		t.Errorf("marker file after Close: stat = %v, want it removed", err)
	}
}

// TestMarkerFilePrivate: a marker file others could read or write is not
// trusted.
func TestMarkerFilePrivate(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := os.Chmod(s.file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Verify(context.Background(), s.Addr()); !errors.Is(err, ErrNotEmbedded) {
		t.Errorf("Verify with a world-readable marker file = %v, want ErrNotEmbedded", err)
	}
}

// TestLockerBatches: the trial server runs the locker's scripts when a
// burst of claims and finishes travels in batch.lua calls (see
// locker/node.go), and a call that fails there fails alone.
func TestLockerBatches(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var evals atomic.Int64 // the EVALSHA and EVAL commands sent
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, ReadTimeout: 10 * time.Second})
	c.AddHook(redistest.AfterHook(func(cmd redis.Cmder) {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			evals.Add(1)
		}
	}))
	t.Cleanup(func() { _ = c.Close() })
	// The trial server runs a batch of 64 claims in gopher-lua, which
	// under -race on a loaded host outlasts the default 500ms NodeTimeout
	// (and go-redis's 3s ReadTimeout).
	l, err := locker.New(c, locker.Options{NodeTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n, bad = 64, 7
	slot := time.Now().Truncate(time.Second)
	key := func(i int) string { return "redcron:{j" + strconv.Itoa(i) + "}" }
	if err := c.Set(ctx, key(bad)+":meta", "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := key(i)
			lease, err := l.Obtain(ctx, locker.Claim{Key: k + ":lease", MetaKey: k + ":meta", TTL: time.Minute,
				MarkKey: k + ":slot", MarkTTL: time.Minute, Retention: time.Minute, Running: "running", Slot: slot,
				Records: locker.Records{Late: "late", Busy: "busy", Paused: "paused", Aborted: "aborted"}})
			if err == nil {
				err = lease.Finish(ctx, "done")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == bad && (err == nil || !strings.Contains(err.Error(), "WRONGTYPE")):
			t.Errorf("claim %d, its meta key not a hash: got %v, want WRONGTYPE", i, err)
		case i != bad && err != nil:
			t.Errorf("claim %d: %v", i, err)
		case i != bad && c.HGet(ctx, key(i)+":slot", "end").Val() != "done":
			t.Errorf("claim %d: got record %q, want %q", i, c.HGet(ctx, key(i)+":slot", "end").Val(), "done")
		}
	}
	if got := evals.Load(); got >= 2*n {
		t.Errorf("script commands for %d claims and finishes at once: got %d, want fewer (batched)", n, got)
	}
}
