package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/redcron/redcron/jobs"
)

// RunFunc runs a job for one slot (one attempt, or all of them once wrapped
// by [Retry]). ctx is cancelled on lease loss (cause locker.ErrLeaseLost),
// timeout (cause [ErrTimeout]) and shutdown (cause [ErrShutdown]).
type RunFunc func(ctx context.Context, r jobs.Run) error

// Wrapper adds behaviour around a RunFunc, as robfig/cron's JobWrapper does.
type Wrapper func(RunFunc) RunFunc

// Chain composes wrappers; the first is the outermost:
// Chain(a, b)(f) is a(b(f)).
func Chain(ws ...Wrapper) Wrapper {
	return func(f RunFunc) RunFunc {
		for i := len(ws) - 1; i >= 0; i-- {
			f = ws[i](f)
		}
		return f
	}
}

// Recover turns a panic in the wrapped function into its error, wrapping
// [ErrPanic] with the value and the stack, so that a panicking job is an
// outcome, not a crashed replica.
func Recover() Wrapper {
	return func(next RunFunc) RunFunc {
		return func(ctx context.Context, r jobs.Run) (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("%w: %v\n%s", ErrPanic, p, debug.Stack())
				}
			}()
			return next(ctx, r)
		}
	}
}

type deadlineKey struct{}

// Timeout cancels the wrapped call's context with cause [ErrTimeout] after
// d, measured on clk (so tests drive it with a fake clock). d <= 0 means no
// timeout. A call that overran d returns an error wrapping ErrTimeout even
// when its function returned nil. The timer goroutine ends when the call
// returns.
func Timeout(clk Clock, d time.Duration) Wrapper {
	return func(next RunFunc) RunFunc {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, r jobs.Run) error {
			deadline := clk.Now().Add(d)
			ctx, cancel := context.WithCancelCause(context.WithValue(ctx, deadlineKey{}, deadline))
			defer cancel(nil)
			t := clk.NewTimer(d)
			done := make(chan struct{})
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				select {
				case <-t.C():
					cancel(ErrTimeout)
				case <-done:
					t.Stop()
				}
			}()
			defer func() { close(done); <-stopped }()
			err := next(ctx, r)
			if context.Cause(ctx) == ErrTimeout && !errors.Is(err, ErrTimeout) {
				// The function overran its timeout: that is the outcome,
				// even if it returned nil afterwards.
				err = errors.Join(fmt.Errorf("%w after %v", ErrTimeout, d), err)
			}
			return err
		}
	}
}

// Retry runs up to rc.Attempts attempts (at least one) within the same slot
// and lease, setting r.Attempt (1-based) and adding an "attempt" field to
// r.Logger. After failed attempt n it waits RetryDelay(rc.Backoff,
// rc.MaxBackoff, n) on clk. It stops at the first success, when ctx ends
// (lease lost, timeout, shutdown), or when the wait would outlast the
// deadline of an enclosing [Timeout]. It returns the last attempt's error;
// the number of attempts made is reported through attempts, if not nil.
func Retry(clk Clock, rc jobs.Retry, attempts *int) Wrapper {
	return func(next RunFunc) RunFunc {
		return func(ctx context.Context, r jobs.Run) error {
			base := r.Logger
			var err error
			for n := 1; ; n++ {
				r.Attempt = n
				r.Logger = base.Hook(attemptField(n))
				if attempts != nil {
					*attempts = n
				}
				if err = next(ctx, r); err == nil || n >= rc.Attempts || ctx.Err() != nil {
					return err
				}
				wait := RetryDelay(rc.Backoff, rc.MaxBackoff, n)
				if dl, ok := ctx.Value(deadlineKey{}).(time.Time); ok && !clk.Now().Add(wait).Before(dl) {
					return err
				}
				r.Logger.Warn().Err(err).Int64("retry_in_ms", wait.Milliseconds()).Msg("attempt failed")
				if serr := sleep(ctx, clk, wait); serr != nil {
					return err
				}
			}
		}
	}
}
