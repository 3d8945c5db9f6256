package scheduler

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		base, max time.Duration
		failed    int
		want      time.Duration
	}{
		{time.Second, time.Minute, 0, 0},
		{time.Second, time.Minute, 1, time.Second},
		{time.Second, time.Minute, 2, 2 * time.Second},
		{time.Second, time.Minute, 3, 4 * time.Second},
		{time.Second, time.Minute, 6, 32 * time.Second},
		{time.Second, time.Minute, 7, time.Minute},
		{time.Second, time.Minute, 1000, time.Minute},
		{time.Second, 0, 4, 8 * time.Second},
		{time.Second, 0, 200, math.MaxInt64},
		{0, time.Minute, 3, 0},
		{3 * time.Second, 2 * time.Second, 1, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := RetryDelay(tt.base, tt.max, tt.failed); got != tt.want {
			t.Errorf("RetryDelay(%v, %v, %d): got %v, want %v", tt.base, tt.max, tt.failed, got, tt.want)
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := reconnectDelay(i + 1); got != w {
			t.Errorf("reconnectDelay(%d): got %v, want %v", i+1, got, w)
		}
	}
}

// TestReconnectWakes: a claim waiting out a long reconnect backoff is
// woken when another call succeeds (Redis is back), not when the backoff
// ends, and the backoff starts over.
func TestReconnectWakes(t *testing.T) {
	var r reconnect
	for range 10 {
		r.failed()
	}
	if got := r.failed(); got != reconnectMax {
		t.Fatalf("backoff after 11 failures: got %v, want %v", got, reconnectMax)
	}
	clk := newFakeClock(time.Unix(0, 0))
	done := make(chan error, 1)
	go func() { done <- r.wait(context.Background(), clk, reconnectMax) }()
	waitFor(t, 10*time.Second, func() bool { return clk.Waiting() == 1 && r.up.Load() != nil })
	r.ok()
	// Woken, it waits a random spread of at most reconnectMin on clk.
	var advanced time.Duration
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("wait: got %v, want nil", err)
			}
		default:
			if i == 500 {
				t.Fatalf("wait did not return after Redis answered, %v on its clock later, with a %v backoff", advanced, reconnectMax)
			}
			clk.Advance(10 * time.Millisecond)
			advanced += 10 * time.Millisecond
			time.Sleep(2 * time.Millisecond)
			continue
		}
		break
	}
	// At most reconnectMin of spread, plus what this loop advanced before
	// the woken goroutine ran: far below the backoff.
	if advanced >= reconnectMax/2 {
		t.Errorf("wait returned %v after Redis answered, want well below the %v backoff", advanced, reconnectMax)
	}
	if got := r.failed(); got != reconnectMin {
		t.Errorf("backoff after a success and one failure: got %v, want %v", got, reconnectMin)
	}
}
