package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redcron/redcron/locker"
)

// Trigger runs job once now, outside its schedule, under its own claim and
// fence. It is manual everywhere it shows: its mark is a key of its own
// (never a scheduled slot's mark, and it leaves the job's high-water slot
// alone), its record and jobs.Run say Manual, command jobs get
// REDCRON_MANUAL=1 and HTTP jobs X-Redcron-Manual: 1. Its slot is the
// current second on this replica's clock. A pause does not stop it (an
// operator asked for it); overlap still holds: with forbid, a job running on
// any replica makes Trigger fail with locker.ErrNotObtained, and so, with
// replace, does a scheduled claim waiting to replace the running one (a
// manual run never takes a slot's place). It returns once
// the claim is decided, with the run's slot and fence; the run goes on like
// any other (lease, timeout, retries, shutdown) and is recorded in the job's
// history. Errors: ErrUnknownJob, ErrJobDisabled, ErrNotRunning outside Run,
// or the claim's error (the locker keeps ctx.Err() when ctx ended it).
func (s *Scheduler) Trigger(ctx context.Context, job string) (slot time.Time, fence int64, err error) {
	return s.trigger(ctx, job, s.opts.Clock.Now().UnixNano())
}

// trigger is Trigger for the manual run id (the Unix nanoseconds of its
// request, see store.TriggerRequest): its mark is the job's ManualMark(id),
// so a request taken by several replicas (quorum mode) runs once.
func (s *Scheduler) trigger(ctx context.Context, job string, id int64) (slot time.Time, fence int64, err error) {
	js := s.job(job)
	switch {
	case js == nil:
		return time.Time{}, 0, fmt.Errorf("%w: %q", ErrUnknownJob, job)
	case !js.job.Enabled:
		return time.Time{}, 0, fmt.Errorf("%w: %q", ErrJobDisabled, job)
	}
	if !s.add() {
		return time.Time{}, 0, ErrNotRunning
	}
	slot = time.Unix(0, id).UTC().Truncate(time.Second)
	bid, err := s.locker.Bid(s.claimFor(js, slot, 0, 0, id))
	var lease *locker.Lease
	if err == nil {
		lease, err = bid.Obtain(ctx)
	}
	if err != nil {
		var ne *locker.NotObtainedError
		if bid != nil && bid.Sent() && !errors.As(err, &ne) {
			// It may have won: keep its mark, recorded as aborted.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CallTimeout)
			_ = bid.Withdraw(wctx)
			cancel()
		}
		s.wg.Done()
		return time.Time{}, 0, fmt.Errorf("scheduler: trigger %q: %w", job, err)
	}
	log := s.jobLog(js, slot)
	log.Info().Int64("fence", lease.Fence()).Bool("manual", true).Msg("manual trigger claimed")
	go func() {
		defer s.wg.Done()
		s.execute(js, slot, lease, true, nil)
	}()
	return slot, lease.Fence(), nil
}

// add counts one more run in wg if Run accepts manual triggers.
func (s *Scheduler) add() bool {
	s.trigMu.Lock()
	defer s.trigMu.Unlock()
	if !s.accepting {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Scheduler) setAccepting(on bool) {
	s.trigMu.Lock()
	s.accepting = on
	s.trigMu.Unlock()
}
