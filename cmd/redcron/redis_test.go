package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/redisconn"
)

func baseRedisConfig() jobs.RedisConfig {
	return jobs.RedisConfig{DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
}

// obtainOnce proves a connection works end to end: a fenced claim and
// release.
func obtainOnce(t *testing.T, c *redisconn.Conn) int64 {
	t.Helper()
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	l, err := c.Locker.Obtain(ctx, locker.Claim{Key: "t:{j}:lease", MetaKey: "t:{j}:meta", TTL: time.Second, Unwatched: true})
	if err != nil {
		t.Fatalf("obtain over %s: %v", c.Describe, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	return l.Fence()
}

// TestEmbedded covers the trial path: with no Redis configured the first
// replica starts the embedded server on its fixed port and a second one
// joins it, so both share slots; fences from the two agree. With a Redis
// configured there is no trial server.
func TestEmbedded(t *testing.T) {
	if l, err := net.Listen("tcp", embedredis.DefaultAddr); err != nil {
		t.Fatalf("%s is taken on this machine; the embedded default needs it: %v", embedredis.DefaultAddr, err)
	} else {
		_ = l.Close()
	}
	first, close1, err := trialConn(baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(close1)
	if !strings.HasPrefix(first.Describe, "embedded redis://"+embedredis.DefaultAddr) {
		t.Fatalf("first: got %q, want the embedded server on %s", first.Describe, embedredis.DefaultAddr)
	}
	second, close2, err := trialConn(baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(close2)
	f1 := obtainOnce(t, first)
	f2 := obtainOnce(t, second)
	if f2 != f1+1 {
		t.Fatalf("fences across the two replicas: got %d then %d, want consecutive (one shared server)", f1, f2)
	}
	if c, done, err := trialConn(baseRedisConfig(), "redis://127.0.0.1:1/0", zerolog.Nop()); c != nil || err != nil {
		t.Fatalf("with --redis: got a trial connection %v (%v), want none", c, err)
	} else {
		done()
	}
}

// TestEmbeddedDoesNotJoinStrangers: a real redis-server occupying the
// embedded server's port is not joined (it may be someone else's): the
// trial replica starts its own server on a free port and writes nothing
// to that redis-server. An embedded server of this machine on the port is
// joined.
func TestEmbeddedDoesNotJoinStrangers(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	rs := redistest.Start(t, redistest.Options{})
	conn, done, err := trialConnAt(rs.Addr(), baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	if strings.Contains(conn.Describe, rs.Addr()) {
		t.Fatalf("joined the redis-server on %s: %q", rs.Addr(), conn.Describe)
	}
	obtainOnce(t, conn)
	if n, err := rs.Client(t).DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("the stranger's redis-server holds %d keys (%v), want 0", n, err)
	}

	ours, err := embedredis.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ours.Close)
	joined, done2, err := trialConnAt(ours.Addr(), baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done2)
	if want := "embedded " + ours.URL(); joined.Describe != want {
		t.Errorf("with this machine's embedded server on the port: got %q, want %q (joined)", joined.Describe, want)
	}
}
