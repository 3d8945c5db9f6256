package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOffsetClock(t *testing.T) {
	base := newFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, off := range []time.Duration{1500 * time.Millisecond, -1900 * time.Millisecond, 0} {
		c := OffsetClock(base, off)
		if got, want := c.Now(), base.Now().Add(off); !got.Equal(want) {
			t.Errorf("offset %v: Now got %v, want %v", off, got, want)
		}
	}
	// A timer computed from the offset clock fires when the offset time is reached.
	c := OffsetClock(base, 2*time.Second)
	target := base.Now().Add(5 * time.Second) // offset time 00:00:05 = base 00:00:03
	tm := c.NewTimer(target.Sub(c.Now()))
	base.Advance(2999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	base.Advance(time.Millisecond)
	select {
	case <-tm.C():
	default:
		t.Fatal("timer did not fire at the offset target")
	}
}

func TestSleepHonoursContextAndClock(t *testing.T) {
	clk := newFakeClock(time.Unix(0, 0))
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- sleep(ctx, clk, time.Hour) }()
	for clk.Waiting() == 0 {
		time.Sleep(time.Millisecond) // wait for the goroutine to arm its timer, not for timing logic
	}
	clk.Advance(time.Hour)
	if err := <-done; err != nil {
		t.Fatalf("sleep after Advance: got %v, want nil", err)
	}
	cancel(ErrShutdown)
	if err := sleep(ctx, clk, time.Hour); !errors.Is(err, ErrShutdown) {
		t.Fatalf("sleep on a cancelled ctx: got %v, want %v", err, ErrShutdown)
	}
}
