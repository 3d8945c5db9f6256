package locker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Errors returned by this package wrap one of them; test
// with errors.Is.
var (
	// ErrNotObtained means the lease key is held by another run (overlap
	// forbid), or a later claim replaced this one before it could start.
	ErrNotObtained = errors.New("locker: not obtained")
	// ErrSlotClaimed means the slot was claimed or decided before: its mark
	// exists, or the job's high-water slot is at or above it.
	ErrSlotClaimed = errors.New("locker: slot already claimed")
	// ErrPaused means the claim's pause key exists.
	ErrPaused = errors.New("locker: paused")
	// ErrEarly means the claim came early on the server's clock: its slot
	// is not due yet (Claim.NotBefore, Claim.Due), or the slot before may
	// still be claimed (Claim.PrevUntil); NotObtainedError.Wait says for
	// how long. Nothing was written: the claim may be retried as itself
	// after Wait.
	ErrEarly = errors.New("locker: claim early on the server clock")
	// ErrLate means the slot is past Claim.NotAfter on the server's clock;
	// the skip was recorded (Records.Late). From RecordSkip: past
	// Skip.NotAfter, and the slot may have been decided; nothing written.
	ErrLate = errors.New("locker: slot past its claim window on the server clock")
	// ErrUnborn means the slot is earlier than the job's first sight, the
	// instant the cluster first saw a claim for the job: it is never run.
	ErrUnborn = errors.New("locker: slot before the job was first seen")
	// ErrLeaseLost is the context cause of a lease that was lost: a renewal
	// found no key or another token, or the local deadline passed before a
	// renewal succeeded. A replaced lease's cause wraps it too.
	ErrLeaseLost = errors.New("locker: lease lost")
	// ErrReplaced is wrapped, beside ErrLeaseLost, by the context cause of a
	// lease that a later claim with Replace took over: the run must stop;
	// the lease is kept while it stops (at most one TTL), then handed over.
	ErrReplaced = errors.New("locker: lease replaced")
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
	// ErrSplitVote means a quorum claim surely lost the vote (its votes
	// plus the nodes that did not answer make no majority, and other
	// claims hold votes) and dropped its marks: no claim may have won, so
	// the same bid may be sent again at once. ErrNoQuorum is wrapped too.
	// An attempt after it that ErrCutShort ends returns it again.
	ErrSplitVote = errors.New("locker: split vote")
	// ErrCutShort means a quorum claim attempt was ended by its context
	// before the nodes' answers were in (dropped unsent from this process's
	// queue, or its replies late), after the bid's last attempt lost a
	// split vote: that ErrSplitVote is returned again beside it, as no
	// answer since says otherwise. The attempt may have won where it was
	// not answered, so its marks are kept where they may have won: retry
	// the Bid as itself, or Withdraw it.
	ErrCutShort = errors.New("locker: attempt cut short by its context")
	// ErrNotSent means a call's context ended while it waited in this
	// process's queue for the node (calls made before it were still in
	// flight): it was never written, so it cannot have run. Its context's
	// error is wrapped too. A claim not sent did not fail on Redis: the
	// caller is behind, not Redis.
	ErrNotSent = errors.New("locker: not sent: the context ended while the call was queued")
	// ErrTooLate means a claim was confirmed only after its local deadline
	// (the caller was paused, or the reply delayed). The claim may have won:
	// retry the Bid as itself, or Withdraw it.
	ErrTooLate = errors.New("locker: claim confirmed too late")
	// ErrNotAcked means a claim won on the node but fewer replicas than
	// Options.MinReplicasAck acknowledged it within AckTimeout, or WAIT
	// failed: a failover could forget it, so its run must not start. The
	// claim may have won: retry the Bid as itself (it waits for the
	// acknowledgements again), or Withdraw it.
	ErrNotAcked = errors.New("locker: claim not acknowledged by enough replicas")
	// ErrInvalid means a Claim or an argument is malformed (empty key,
	// non-positive TTL, a mark or history without its TTL, ...).
	ErrInvalid = errors.New("locker: invalid argument")
)

// errReplaced is the context cause of a replaced lease.
var errReplaced = fmt.Errorf("%w: %w", ErrLeaseLost, ErrReplaced)

// NotObtainedError is returned (wrapped) when a claim fails because of
// state, not I/O. errors.Is(err, ErrNotObtained|ErrSlotClaimed|ErrPaused|
// ErrEarly|ErrLate|ErrUnborn) works through Unwrap; errors.As gives the
// details.
type NotObtainedError struct {
	Reason    error         // one of the sentinels above
	TTL       time.Duration // remaining TTL of the key that blocked (0 if unknown or none)
	Record    string        // the mark's final record when Reason is ErrSlotClaimed
	Wait      time.Duration // ErrEarly: how long until the claim may be sent again (server clock)
	Prev      bool          // ErrEarly: the wait is for the slot before to be decided (Claim.PrevUntil), not for this slot to be due
	FirstSeen time.Time     // ErrUnborn: the job's first sight
	// Decided is, with ErrLate from RecordSkip on a single node, the
	// latest slot that nothing can prove undecided any more (zero in quorum
	// mode): the job's high-water slot, or, while its ring speaks for the
	// slots above, the latest slot below them. A skip of any slot up to it
	// is late too once past its Skip.NotAfter.
	Decided time.Time
	// Minority is set, in quorum mode, on a refusal that decides the slot
	// (ErrNotObtained, ErrPaused, ErrLate or ErrSlotClaimed) while the
	// slot's final record stands on fewer than a majority of the nodes:
	// they refused for mixed reasons (a busy lease on one, the slot passed
	// over or before the job's first sight on another). The caller
	// completes the record with RecordSkip once no replica may claim the
	// slot any more.
	Minority bool
}

// Error describes the reason and what blocked.
func (e *NotObtainedError) Error() string {
	switch {
	case e.Record != "":
		return fmt.Sprintf("%v (record %q, ttl %v)", e.Reason, e.Record, e.TTL)
	case e.Wait > 0:
		return fmt.Sprintf("%v (due in %v)", e.Reason, e.Wait)
	case !e.FirstSeen.IsZero():
		return fmt.Sprintf("%v (first seen %s)", e.Reason, e.FirstSeen.Format(time.RFC3339))
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

// withCtx wraps err and keeps ctx's error when the context ended the call,
// also when its deadline has passed but its timer has not fired yet (a
// socket deadline set from it can fire first).
func withCtx(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil && ended(ctx, time.Now()) {
		cerr = context.DeadlineExceeded
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return errors.Join(err, cerr)
	}
	return err
}

// stateErr reports whether err is a refusal by state (the claim reached
// Redis and was answered), as opposed to I/O, quorum or a late confirmation.
func stateErr(err error) bool {
	var ne *NotObtainedError
	return errors.As(err, &ne)
}
