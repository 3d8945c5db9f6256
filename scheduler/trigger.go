package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Trigger runs job once now, outside its schedule, under its own claim and
// fence: its slot is the current second on this replica's clock, its mark a
// key of its own ("<prefix>:{<job>}:manual:<unix nanos>"), so it never takes
// a scheduled slot, and a pause does not stop it (an operator asked for it).
// Overlap still holds: with forbid, a job running on any replica makes
// Trigger fail with locker.ErrNotObtained. It returns once the claim is
// decided, with the run's slot and fence; the run goes on like any other
// (lease, timeout, retries, shutdown) and is recorded in the job's history.
// Errors: ErrUnknownJob, ErrJobDisabled, ErrNotRunning outside Run, or the
// claim's error (the locker keeps ctx.Err() when ctx ended it).
func (s *Scheduler) Trigger(ctx context.Context, job string) (slot time.Time, fence int64, err error) {
	var js *jobState
	for _, j := range s.jobs {
		if j.job.Name == job {
			js = j
		}
	}
	switch {
	case js == nil:
		return time.Time{}, 0, fmt.Errorf("%w: %q", ErrUnknownJob, job)
	case !js.job.Enabled:
		return time.Time{}, 0, fmt.Errorf("%w: %q", ErrJobDisabled, job)
	}
	if !s.add() {
		return time.Time{}, 0, ErrNotRunning
	}
	now := s.opts.Clock.Now()
	slot = now.UTC().Truncate(time.Second)
	manual := js.keys.prefix + "manual:" + strconv.FormatInt(now.UnixNano(), 10)
	c := s.claimFor(js, slot)
	c.MarkKey, c.PauseKey, c.BusyRecord = manual, "", ""
	if c.Key != js.keys.run { // overlap allow: a lease of its own
		c.Key = manual + ":lease"
	}
	lease, err := s.locker.Obtain(ctx, c)
	if err != nil {
		s.wg.Done()
		return time.Time{}, 0, fmt.Errorf("scheduler: trigger %q: %w", job, err)
	}
	log := s.jobLog(js, slot)
	log.Info().Int64("fence", lease.Fence()).Bool("manual", true).Msg("manual trigger claimed")
	go func() {
		defer s.wg.Done()
		s.execute(js, slot, lease)
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
