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
	// ErrPanic is wrapped by the error of a run whose job panicked.
	ErrPanic = errors.New("scheduler: job panicked")
)
