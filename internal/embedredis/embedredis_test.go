package embedredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
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
