package scheduler

import (
	"context"
	"sync/atomic"
	"time"
)

// Clock is the scheduler's single source of time: every slot decision, timer,
// jitter wait, retry backoff and timeout reads it. Implementations must be safe
// for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once, after d (at once if d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a [Clock].
type Timer interface {
	// C delivers one value when the timer fires. Callers use it as a signal
	// only and read the time from the Clock: the value sent is not offset.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// RealClock returns the system clock (time.Now and time.NewTimer).
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// OffsetClock returns a clock that reads base plus offset: the fault-injection
// knob REDCRON_CLOCK_OFFSET. Every Now is shifted; timers keep base's rate,
// and since the scheduler computes every timer as (target - Now()), the offset
// applies to every timer too. A nil base means [RealClock].
func OffsetClock(base Clock, offset time.Duration) Clock {
	if base == nil {
		base = RealClock()
	}
	return offsetClock{base: base, offset: offset}
}

type offsetClock struct {
	base   Clock
	offset time.Duration
}

func (c offsetClock) Now() time.Time                 { return c.base.Now().Add(c.offset) }
func (c offsetClock) NewTimer(d time.Duration) Timer { return c.base.NewTimer(d) }

// sleepUntil waits on clk until t, or until ctx ends, in which case it returns
// context.Cause(ctx).
func sleepUntil(ctx context.Context, clk Clock, t time.Time) error {
	return sleep(ctx, clk, t.Sub(clk.Now()))
}

// sleep waits d on clk, or until ctx ends (returning context.Cause(ctx)).
func sleep(ctx context.Context, clk Clock, d time.Duration) error {
	_, err := sleepOr(ctx, clk, d, nil)
	return err
}

// sleepOr is sleep that also ends, with woken true, when wake is closed.
func sleepOr(ctx context.Context, clk Clock, d time.Duration, wake <-chan struct{}) (woken bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, context.Cause(ctx)
	}
	if d <= 0 {
		return false, nil
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return false, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	case <-wake:
		return true, nil
	}
}

// correctedClock is the scheduler's clock: its Options.Clock plus the
// offset to Redis's clock that the clock watch last measured (within
// MaxClockSkew), so that every replica fires a slot when it is due on
// Redis's clock, the one that claims are checked against, whether its own
// clock runs ahead or behind. A replica behind by 300 ms would otherwise
// start its share of the firings 300 ms late.
type correctedClock struct {
	base       Clock
	correction atomic.Int64 // nanoseconds added to base
}

func (c *correctedClock) Now() time.Time { return c.base.Now().Add(c.get()) }

func (c *correctedClock) NewTimer(d time.Duration) Timer { return c.base.NewTimer(d) }

func (c *correctedClock) get() time.Duration { return time.Duration(c.correction.Load()) }

// correctionNoise is the change of measured offset below which the
// correction is left alone: a measurement's error (half a round trip) must
// not make the clock jitter.
const correctionNoise = 10 * time.Millisecond

// correct moves the correction to offset when it differs by more than
// correctionNoise.
func (c *correctedClock) correct(offset time.Duration) {
	if (offset - c.get()).Abs() > correctionNoise {
		c.correction.Store(int64(offset))
	}
}
