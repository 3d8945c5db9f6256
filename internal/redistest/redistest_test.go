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

func TestTLS(t *testing.T) {
	pki := GeneratePKI(t)
	for _, tc := range []struct {
		name        string
		auth        bool
		noCertFails bool
	}{
		{"server only", false, false},
		{"client certificates required", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{TLS: pki, TLSAuthClients: tc.auth})
			ctx := context.Background()
			if err := s.Client(t).Ping(ctx).Err(); err != nil {
				t.Fatalf("ping over TLS with the PKI's CA and client certificate: %v", err)
			}
			if got := s.URL(); got != "rediss://"+s.Addr()+"/0" {
				t.Errorf("URL() = %q, want rediss://%s/0", got, s.Addr())
			}
			plain := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
			defer plain.Close()
			if err := plain.Ping(ctx).Err(); err == nil {
				t.Errorf("ping without TLS: got nil error, want one")
			}
			cfg := pki.ClientConfig()
			cfg.Certificates = nil
			noCert := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, TLSConfig: cfg})
			defer noCert.Close()
			if err := noCert.Ping(ctx).Err(); (err != nil) != tc.noCertFails {
				t.Errorf("ping without a client certificate: got %v, want failure %v", err, tc.noCertFails)
			}
		})
	}
}

func TestReplica(t *testing.T) {
	ctx := context.Background()
	m := Start(t, Options{})
	p := StartProxy(t, m.Addr())
	r := StartReplica(t, p.Addr(), Options{})
	if err := m.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := r.Client(t).Get(ctx, "k").Result()
		if got == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica: got %q, want \"v\" replicated through the proxy", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
