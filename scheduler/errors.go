package scheduler

import "errors"

var (
	// ErrShutdown is the context cause of a run cancelled because the
	// scheduler's shutdown grace ran out.
	ErrShutdown = errors.New("scheduler: shutdown")
	// ErrTimeout is the context cause of a run that exceeded its job's timeout.
	ErrTimeout = errors.New("scheduler: run timed out")
	// ErrInvalidJob is returned (wrapped) by New for a nil, unnamed,
	// duplicated or unscheduled job.
	ErrInvalidJob = errors.New("scheduler: invalid job")
	// ErrNotRunning is returned by Trigger outside Run, or once Run began
	// its shutdown.
	ErrNotRunning = errors.New("scheduler: not running")
	// ErrUnknownJob is returned by Trigger for a job the scheduler lacks.
	ErrUnknownJob = errors.New("scheduler: unknown job")
	// ErrJobDisabled is returned by Trigger for a job with enabled: false.
	ErrJobDisabled = errors.New("scheduler: job disabled")
	// ErrPanic is wrapped by the error of a run whose job panicked.
	ErrPanic = errors.New("scheduler: job panicked")
)
