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
)

func baseRedisConfig() jobs.RedisConfig {
	return jobs.RedisConfig{DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
}

// obtainOnce proves a backend works end to end: a fenced claim and release.
func obtainOnce(t *testing.T, be *backend) int64 {
	t.Helper()
	ctx := context.Background()
	if err := be.ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	l, err := be.locker.Obtain(ctx, locker.Claim{Key: "t:{j}:lease", MetaKey: "t:{j}:meta", TTL: time.Second, Unwatched: true})
	if err != nil {
		t.Fatalf("obtain over %s: %v", be.describe, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	return l.Fence()
}

func TestConnect(t *testing.T) {
	acl := redistest.Start(t, redistest.Options{Username: "cron", UserPassword: "pw"})
	pass := redistest.Start(t, redistest.Options{Password: "s3cret"})
	q := []*redistest.Server{redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{})}

	tests := []struct {
		name     string
		rc       func() jobs.RedisConfig
		override string
		describe string
	}{
		{"url with ACL user from the config", func() jobs.RedisConfig {
			rc := baseRedisConfig()
			rc.URL, rc.Username, rc.Password = "redis://"+acl.Addr()+"/0", "cron", "pw"
			return rc
		}, "", "redis://" + acl.Addr()},
		{"password in the URL", func() jobs.RedisConfig {
			rc := baseRedisConfig()
			rc.URL = pass.URL()
			return rc
		}, "", "redis://" + pass.Addr()},
		{"override beats the config's quorum", func() jobs.RedisConfig {
			rc := baseRedisConfig()
			rc.Quorum = []string{"redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0", "redis://127.0.0.1:3/0"}
			return rc
		}, q[0].URL(), "redis://" + q[0].Addr()},
		{"quorum of three", func() jobs.RedisConfig {
			rc := baseRedisConfig()
			rc.Quorum = []string{q[0].URL(), q[1].URL(), q[2].URL()}
			return rc
		}, "", "quorum of 3 masters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			be, err := connect(tc.rc(), tc.override, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(be.close)
			if !strings.HasPrefix(be.describe, tc.describe) {
				t.Fatalf("describe: got %q, want prefix %q", be.describe, tc.describe)
			}
			if f := obtainOnce(t, be); f < 1 {
				t.Fatalf("fence: got %d, want >= 1", f)
			}
		})
	}

	t.Run("wrong password: not ready", func(t *testing.T) {
		rc := baseRedisConfig()
		rc.URL, rc.Username, rc.Password = "redis://"+acl.Addr()+"/0", "cron", "nope"
		be, err := connect(rc, "", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(be.close)
		if err := be.ready(context.Background()); err == nil {
			t.Fatalf("ready with a wrong password: got nil, want an auth error")
		}
	})

	t.Run("quorum with one master down is still ready; with two it is not", func(t *testing.T) {
		rc := baseRedisConfig()
		rc.Quorum = []string{q[0].URL(), q[1].URL(), "redis://127.0.0.1:1/0"}
		be, err := connect(rc, "", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(be.close)
		obtainOnce(t, be)
		rc.Quorum = []string{q[0].URL(), "redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"}
		be2, err := connect(rc, "", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(be2.close)
		if err := be2.ready(context.Background()); err == nil {
			t.Fatalf("ready with 2 of 3 masters down: got nil, want an error")
		}
	})
}

// TestEmbedded covers the trial path: with no Redis configured the first
// replica starts the embedded server on its fixed port and a second one
// joins it, so both share slots; fences from the two agree.
func TestEmbedded(t *testing.T) {
	if l, err := net.Listen("tcp", embedredis.DefaultAddr); err != nil {
		t.Fatalf("%s is taken on this machine; the embedded default needs it: %v", embedredis.DefaultAddr, err)
	} else {
		_ = l.Close()
	}
	first, err := connect(baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.close)
	if !strings.HasPrefix(first.describe, "embedded redis://"+embedredis.DefaultAddr) {
		t.Fatalf("first: got %q, want the embedded server on %s", first.describe, embedredis.DefaultAddr)
	}
	second, err := connect(baseRedisConfig(), "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.close)
	f1 := obtainOnce(t, first)
	f2 := obtainOnce(t, second)
	if f2 != f1+1 {
		t.Fatalf("fences across the two replicas: got %d then %d, want consecutive (one shared server)", f1, f2)
	}
}

func TestConnectBadURL(t *testing.T) {
	rc := baseRedisConfig()
	_, err := connect(rc, "mysql://nope", zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "redis url") {
		t.Fatalf("got %v, want a redis url error", err)
	}
}

// TestCheckSettingsWarns: at start a replica warns loudly about Redis
// settings that weaken the guarantees, and once, without stopping, when
// CONFIG is refused (managed Redis).
func TestCheckSettingsWarns(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"eviction and no AOF", []string{"--maxmemory-policy", "allkeys-lru"}, []string{"REDIS SETTING WEAKENS THE GUARANTEES: maxmemory-policy is allkeys-lru", "REDIS SETTING WEAKENS THE GUARANTEES: appendonly is no"}},
		{"CONFIG refused", []string{"--rename-command", "CONFIG", ""}, []string{"cannot read Redis settings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Args: tc.args})
			rc := baseRedisConfig()
			rc.URL = srv.URL()
			be, err := connect(rc, "", zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(be.close)
			var buf strings.Builder
			be.checkSettings(context.Background(), zerolog.New(&buf))
			out := buf.String()
			for _, w := range tc.want {
				if strings.Count(out, w) != 1 {
					t.Errorf("log: got %q, want %q once", out, w)
				}
			}
			if n := strings.Count(out, "\n"); n != len(tc.want) {
				t.Errorf("log lines: got %d, want %d:\n%s", n, len(tc.want), out)
			}
		})
	}
}
