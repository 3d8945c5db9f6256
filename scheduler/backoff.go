package scheduler

import (
	"math"
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
