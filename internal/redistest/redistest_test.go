package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFaults(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{AOF: true})
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	short := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer short.Close()
	if err := short.Ping(ctx).Err(); err == nil {
		t.Fatalf("ping while paused: got nil error, want a timeout")
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after resume: %v", err)
	}

	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := short.Ping(ctx).Err(); err == nil {
		t.Fatalf("ping after kill: got nil error, want one")
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("after restart with AOF: got %q, %v; want \"v\"", got, err)
	}
}

func TestAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"password", Options{Password: "s3cret"}},
		{"acl user", Options{Username: "app", UserPassword: "pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			opt, err := redis.ParseURL(s.URL())
			if err != nil {
				t.Fatal(err)
			}
			c := redis.NewClient(opt)
			defer c.Close()
			if err := c.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("ping with credentials from URL: %v", err)
			}
			anon := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
			defer anon.Close()
			if err := anon.Set(context.Background(), "x", 1, 0).Err(); err == nil {
				t.Fatalf("write without credentials: got nil error, want NOAUTH")
			}
		})
	}
}

func TestSeveral(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		s := Start(t, Options{})
		if seen[s.Addr()] {
			t.Fatalf("two servers on %s", s.Addr())
		}
		seen[s.Addr()] = true
	}
}
