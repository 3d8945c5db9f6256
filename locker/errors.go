package locker

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Errors returned by this package wrap one of them; test
// with errors.Is.
var (
	// ErrNotObtained means the lease key is held by another token.
	ErrNotObtained = errors.New("locker: not obtained")
	// ErrSlotClaimed means the claim's mark key exists: the slot was already
	// run, is running, or was skipped.
	ErrSlotClaimed = errors.New("locker: slot already claimed")
	// ErrPaused means the claim's pause key exists.
	ErrPaused = errors.New("locker: paused")
	// ErrLeaseLost is the context cause of a lease that was lost: a renewal
	// found no key or another token, or the local deadline passed before a
	// renewal succeeded.
	ErrLeaseLost = errors.New("locker: lease lost")
	// ErrLeaseExpired means Renew, Release or Finish found no lease key.
	ErrLeaseExpired = errors.New("locker: lease expired")
	// ErrLeaseTaken means Renew, Release or Finish found another token.
	ErrLeaseTaken = errors.New("locker: lease taken")
	// ErrReleased is the context cause of a lease ended by Release or Finish.
	ErrReleased = errors.New("locker: lease released")
	// ErrNoQuorum means a majority of nodes did not confirm the operation, or
	// the lease's validity was used up before they did (then ErrTooLate is
	// wrapped too).
	ErrNoQuorum = errors.New("locker: no quorum")
	// ErrTooLate means a claim was confirmed only after its local deadline
	// (the caller was paused, or the reply delayed). Other replicas may have
	// seen it win, so the slot's mark is kept, as SkippedAborted.
	ErrTooLate = errors.New("locker: claim confirmed too late")
	// ErrInvalid means a Claim or an argument is malformed (empty key,
	// non-positive TTL, a mark or history without its TTL, ...).
	ErrInvalid = errors.New("locker: invalid argument")
)

// NotObtainedError is returned (wrapped) when Obtain fails because of state,
// not I/O. errors.Is(err, ErrNotObtained|ErrSlotClaimed|ErrPaused) works
// through Unwrap; errors.As gives the details.
type NotObtainedError struct {
	Reason error         // ErrNotObtained, ErrSlotClaimed or ErrPaused
	TTL    time.Duration // remaining TTL of the key that blocked (0 if unknown or none)
	Record string        // value of the mark key when Reason == ErrSlotClaimed
}

// Error describes the reason, the blocking key's remaining TTL and the
// mark's record when there is one.
func (e *NotObtainedError) Error() string {
	switch {
	case e.Record != "":
		return fmt.Sprintf("%v (record %q, ttl %v)", e.Reason, e.Record, e.TTL)
	case e.TTL > 0:
		return fmt.Sprintf("%v (ttl %v)", e.Reason, e.TTL)
	}
	return e.Reason.Error()
}

// Unwrap returns Reason.
func (e *NotObtainedError) Unwrap() error { return e.Reason }

// FinishError is returned by Finish when the lease key was gone or held by
// another token. It unwraps to ErrLeaseExpired or ErrLeaseTaken. Recorded
// says whether the final record was still written: with a MarkKey the mark
// is updated as long as it holds this lease's running record, so a run that
// outlived its lease key does not lose its outcome.
type FinishError struct {
	Reason   error // ErrLeaseExpired or ErrLeaseTaken
	Recorded bool  // the record was written to the mark
}

// Error names the reason and whether the record was written.
func (e *FinishError) Error() string {
	if e.Recorded {
		return e.Reason.Error() + " (record written to the mark)"
	}
	return e.Reason.Error() + " (record not written)"
}

// Unwrap returns Reason.
func (e *FinishError) Unwrap() error { return e.Reason }

// withCtx wraps err and keeps ctx's error when the context ended the call.
func withCtx(ctx interface{ Err() error }, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return errors.Join(err, cerr)
	}
	return err
}
