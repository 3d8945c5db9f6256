package locker

import (
	"context"
	"errors"
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
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, PoolSize: 4, ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	p.Delay(redistest.ToClient, 300*time.Millisecond)
	ln := &newNode(c).lanes[laneMain]

	// c0 keeps the lane busy for one delayed round trip, so that the next
	// two calls queue and go out together.
	bg := context.Background()
	c0 := newCall(bg, redis.NewCmd(bg, "ping"), "", 2*time.Second)
	done0 := make(chan error, 1)
	go func() { done0 <- ln.run(c0) }()
	waitBusy(t, ln)

	short, cancel := context.WithTimeout(bg, 450*time.Millisecond)
	defer cancel()
	c1 := newCall(short, redis.NewCmd(short, "ping"), "", 2*time.Second)
	c2 := newCall(bg, redis.NewCmd(bg, "ping"), "", 2*time.Second)
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
