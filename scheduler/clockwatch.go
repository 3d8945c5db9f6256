package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// clockWatch measures this replica's clock against Redis's TIME, at start,
// every ClockCheck, and at once when a claim is refused as early; a replica
// whose clock is off by more than MaxClockSkew claims nothing until it is
// back within it (promise 8). It owns one goroutine, started by Run.
type clockWatch struct {
	s    *Scheduler
	kick chan struct{} // measure now

	mu       sync.Mutex
	measured bool          // at least one measurement succeeded
	offset   time.Duration // Redis minus this replica's clock (Options.Clock, uncorrected)
	ok       bool          // |offset| <= MaxClockSkew
	lastErr  error         // the last measurement's error
}

func newClockWatch(s *Scheduler) *clockWatch {
	return &clockWatch{s: s, kick: make(chan struct{}, 1)}
}

// start runs the watch, measuring at once and then every ClockCheck, until
// ctx ends or the returned func, which stops it and waits for it. Until
// the first measurement the replica may claim: a claim is still refused by
// Redis when its slot is not due on the server's clock, which triggers a
// measurement.
func (w *clockWatch) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		clk := w.s.opts.Clock
		w.measure(ctx)
		for {
			t := clk.NewTimer(w.s.opts.ClockCheck)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-w.kick:
				t.Stop()
			case <-t.C():
			}
			w.measure(ctx)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// recheck asks for a measurement now (a claim was refused as early).
func (w *clockWatch) recheck() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// measure takes one measurement and logs a change of state once.
func (w *clockWatch) measure(ctx context.Context) {
	sc, err := w.s.locker.ServerClock(ctx, w.s.clk.base.Now)
	skew := w.s.opts.MaxClockSkew
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.lastErr == nil {
			w.s.log.Debug().Err(err).Msg("clock check against Redis failed")
		}
		w.lastErr = err
		return
	}
	w.lastErr = nil
	w.s.reconnect.ok()
	ok := sc.Offset.Abs() <= skew
	w.s.metrics.clockOffset.Set(sc.Offset.Seconds())
	switch {
	case !ok && (w.ok || !w.measured):
		w.s.log.Error().Int64("offset_ms", sc.Offset.Milliseconds()).Int64("max_clock_skew_ms", skew.Milliseconds()).
			Int64("rtt_us", sc.RTT.Microseconds()).Msg("clock off from Redis by more than max_clock_skew: this replica claims nothing until it is back")
	case ok && w.measured && !w.ok:
		w.s.log.Info().Int64("offset_ms", sc.Offset.Milliseconds()).Msg("clock back within max_clock_skew of Redis: claiming again")
	}
	w.measured, w.offset, w.ok = true, sc.Offset, ok
	if ok {
		w.s.clk.correct(sc.Offset)
	}
}

// healthy reports whether this replica may claim: its last measured
// offset is within MaxClockSkew (or nothing was measured yet: Redis has
// not answered, and the claims' own server-clock bounds still hold).
func (w *clockWatch) healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok || !w.measured
}

// lead is how far the scheduler's clock (corrected, see correctedClock)
// still runs ahead of Redis's, when it does (0 otherwise): claims are sent
// that much after their slot on this clock, so that they reach Redis once
// the slot is due there.
func (w *clockWatch) lead() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.measured || !w.ok {
		return 0
	}
	return max(w.s.clk.get()-w.offset, 0)
}

// off is the measured offset (Redis's clock minus this replica's) while
// it is beyond MaxClockSkew, and 0 otherwise: within it the scheduler's
// clock is corrected, and the bounds that use the replica's own clock
// carry MaxClockSkew.
func (w *clockWatch) off() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.measured || w.ok {
		return 0
	}
	return w.offset
}

func (w *clockWatch) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case !w.measured && w.lastErr != nil:
		return fmt.Errorf("clock not measured against Redis: %w", w.lastErr)
	case !w.measured:
		return fmt.Errorf("clock not measured against Redis yet")
	case !w.ok:
		return fmt.Errorf("clock off from Redis by %v, more than max_clock_skew %v", w.offset.Round(time.Millisecond), w.s.opts.MaxClockSkew)
	}
	return nil
}
