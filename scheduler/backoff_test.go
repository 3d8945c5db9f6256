package scheduler

import (
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
