package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Run describes one attempt of one slot of a job, as the scheduler hands it
// to the job.
type Run struct {
	Job     string    // job name
	Slot    time.Time // nominal UTC instant of the slot, second precision
	Fence   int64     // fencing token of the claim: strictly increasing per job
	Attempt int       // 1-based attempt within the slot
	Replica string    // replica running it
	Manual  bool      // a manual trigger, not a scheduled slot (Slot is then the trigger's second)
	// Output, when not nil, keeps the tail of what the run printed (a
	// command's stdout and stderr, an HTTP response's body) for its
	// record; a Go function may write to it too.
	Output *Tail
	Logger zerolog.Logger // carries the job, slot, replica, fence and attempt fields
}

// Run executes one attempt of the job, a registered Go function, a command
// or an HTTP request, and returns its outcome: nil for success, else an
// error wrapping ErrCommandStart, ErrCommandExit (*ExitError),
// ErrHTTPRequest, ErrHTTPStatus (*StatusError), ErrPanic, or the function's
// own error. When ctx ends the attempt, the error also matches ctx.Err() and
// context.Cause(ctx) (e.g. locker.ErrLeaseLost).
//
// ctx must be cancelled on lease loss, timeout and shutdown: Run does not
// apply j.Timeout, j.Retry or j.Jitter itself; the scheduler owns the run's
// deadline across attempts. A command is stopped with SIGTERM to its process
// group, then SIGKILL after its kill_grace. An HTTP request is also bounded by
// its own timeout. Run fills r.Job from j.Name when empty.
func (j *Job) Run(ctx context.Context, r Run) error {
	if r.Job == "" {
		r.Job = j.Name
	}
	if err := ctxErr(ctx); err != nil {
		return fmt.Errorf("jobs: %s not started: %w", j.Name, err)
	}
	switch j.Kind {
	case KindFunc:
		e := j.fn
		if e == nil {
			e = lookupFunc(j.Func)
		}
		if e == nil {
			return fmt.Errorf("%w: %w %q", ErrNoKind, ErrUnknownFunc, j.Func)
		}
		args, ps := j.decodedArgs(e)
		if len(ps) > 0 { // only for Jobs built by hand: Load checks args
			return fmt.Errorf("%w: %s: args: line %d: %s", ErrInvalidConfig, j.Name, ps[0].line, ps[0].msg)
		}
		err := e.invoke(ctx, r, args)
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = errors.Join(err, ctxErr(ctx))
		}
		return err
	case KindCommand:
		if j.Command == nil {
			return fmt.Errorf("%w: %s: no command", ErrNoKind, j.Name)
		}
		return execCommand(ctx, j.Command, r)
	case KindHTTP:
		if j.HTTP == nil {
			return fmt.Errorf("%w: %s: no http block", ErrNoKind, j.Name)
		}
		return sendHTTP(ctx, j.HTTP, r)
	}
	return fmt.Errorf("%w: %s: kind %q", ErrNoKind, j.Name, j.Kind)
}

// ctxErr returns nil while ctx is live, else its cause joined with ctx.Err()
// (once when they are the same).
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
		return errors.Join(cause, err)
	}
	return err
}
