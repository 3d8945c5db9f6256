package scheduler

import (
	"context"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

const (
	// reconnectMin and reconnectMax bound the wait between claim attempts
	// while Redis fails: 100ms doubling up to 5s.
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// RetryDelay returns the wait after failed attempt number failed (1-based)
// of a run: backoff doubled per earlier failure, capped at maxBackoff
// (maxBackoff <= 0 means no cap). It is 0 for failed < 1 or backoff <= 0.
// Retries also stop when the run's lease is lost or its timeout would pass
// before the next attempt.
func RetryDelay(backoff, maxBackoff time.Duration, failed int) time.Duration {
	if failed < 1 || backoff <= 0 {
		return 0
	}
	d := backoff
	for i := 1; i < failed; i++ {
		if maxBackoff > 0 && d >= maxBackoff {
			break
		}
		if d > math.MaxInt64/2 {
			return math.MaxInt64 // no cap and no overflow
		}
		d *= 2
	}
	if maxBackoff > 0 && d > maxBackoff {
		d = maxBackoff
	}
	return d
}

// reconnectDelay is the wait before the next claim after failures
// consecutive Redis errors: 100ms, 200ms, ... capped at 5s.
func reconnectDelay(failures int) time.Duration {
	return RetryDelay(reconnectMin, reconnectMax, failures)
}

// reconnect is the claims' shared reconnect backoff. Consecutive claim I/O
// errors, across jobs, set the wait before a claim is sent again; the
// first Redis call that succeeds again (a claim, a liveness beat, a clock
// check) wakes every claim waiting it out, so that a slot is not lost to a
// backoff that outlasts the outage (a Sentinel failover takes about 2 s).
type reconnect struct {
	failures atomic.Int64
	// up is closed by the next success; nil while no claim waits.
	up atomic.Pointer[chan struct{}]
}

// failed counts a claim I/O error and returns the wait before the next
// attempt: reconnectDelay of the consecutive errors.
func (r *reconnect) failed() time.Duration {
	return reconnectDelay(int(r.failures.Add(1)))
}

// ok says Redis answered: the backoff starts over and waiting claims wake.
func (r *reconnect) ok() {
	if r.failures.Load() != 0 {
		r.failures.Store(0)
	}
	if p := r.up.Swap(nil); p != nil {
		close(*p)
	}
}

// wait sleeps d on clk, or until Redis answers again (then a random
// spread of up to reconnectMin, so that the woken claims do not all
// arrive at once), or until ctx ends (returning context.Cause(ctx)).
func (r *reconnect) wait(ctx context.Context, clk Clock, d time.Duration) error {
	woken, err := sleepOr(ctx, clk, d, r.backUp())
	if err != nil || !woken {
		return err
	}
	return sleep(ctx, clk, min(rand.N(reconnectMin), d))
}

// backUp returns the channel the next success closes.
func (r *reconnect) backUp() <-chan struct{} {
	for {
		if p := r.up.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if r.up.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}
