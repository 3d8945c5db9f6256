package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
)

// fire starts the firing that claims and runs (job, slot), on a worker
// goroutine (see workers). Called by the loop only; the firing is counted
// in s.wg and ends when the run is recorded, or at once when claiming is
// over (ctx ended).
func (s *Scheduler) fire(ctx context.Context, js *jobState, slot, next time.Time, g *gate) {
	s.wg.Add(1)
	s.workers.do(func() {
		defer s.wg.Done()
		s.firing(ctx, js, slot, next, g)
	})
}

// firing waits for the slot (its gate, when handed out early) and the
// slot's jitter, claims it (retrying I/O errors with the shared reconnect
// backoff while the slot is still claimable), and runs it under the lease.
// next is the job's slot after slot (zero: none); g is nil when the slot
// has already come.
func (s *Scheduler) firing(ctx context.Context, js *jobState, slot, next time.Time, g *gate) {
	j := js.job
	if g != nil {
		select {
		case <-g.open:
		case <-ctx.Done():
			return // shutting down: stop claiming
		}
	}
	jitter := Jitter(j.Name, slot, j.Jitter)
	if err := sleepUntil(ctx, s.opts.Clock, slot.Add(jitter)); err != nil {
		return // shutting down: stop claiming
	}
	lease := s.claim(ctx, js, slot, next, jitter, g)
	if lease == nil {
		return
	}
	s.execute(js, slot, lease)
}

// jobLog is the logger of (job, slot). Built only when a line is written:
// a claim that another replica won logs nothing, and building a child
// logger for each of thousands of claims a second is measurable.
func (s *Scheduler) jobLog(js *jobState, slot time.Time) zerolog.Logger {
	return s.log.With().Str("job", js.job.Name).Time("slot", slot).Logger()
}

// claim obtains the lease for (job, slot) or returns nil after logging and
// counting why not. Attempts stop at the claim deadline, slot + jitter +
// max(catchup_window, OnTime), beyond which the slot's mark may have expired
// (see MarkRetention), and I/O retries also stop when the next slot comes:
// that one is then the most recent missed slot, and it retries in turn.
func (s *Scheduler) claim(ctx context.Context, js *jobState, slot, next time.Time, jitter time.Duration, g *gate) *locker.Lease {
	j := js.job
	clk := s.opts.Clock
	deadline, retryUntil := claimBounds(j, slot, next, jitter)
	c := s.claimFor(js, slot)
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil // shutting down: no new attempt
		}
		if clk.Now().After(deadline) {
			s.skip(js, slot, SkipLate, 1, slot, false)
			return nil
		}
		// An attempt for slot S must not complete after the next slot's
		// claim began: fences would then not follow slots.
		var lease *locker.Lease
		var err error
		if attempt == 1 && g != nil && g.attempt != nil && g.until.Equal(retryUntil) {
			// The same bound as every first attempt of this instant.
			lease, err = s.locker.Obtain(g.attempt, c)
		} else {
			actx, acancel := s.attemptCtx(ctx, retryUntil)
			lease, err = s.locker.Obtain(actx, c)
			acancel()
		}
		if err == nil {
			s.failures.Store(0)
			if clk.Now().After(deadline) {
				// Confirmed after the claim deadline (this replica paused
				// between the check above and the send): the slot's earlier
				// mark may have expired, so it may have run already. Keep
				// the slot claimed, on record, and do not run it.
				fctx, fcancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
				_ = lease.Finish(fctx, "skipped:"+SkipLate, s.MarkRetention(j))
				fcancel()
				s.skip(js, slot, SkipLate, 1, slot, false)
				return nil
			}
			return lease
		}
		switch {
		case errors.Is(err, locker.ErrSlotClaimed):
			// Another replica (or this one, before a restart) has it;
			// a skip is counted once, by the replica that recorded it.
			if e := s.log.Debug(); e.Enabled() {
				e.Str("job", j.Name).Time("slot", slot).Str("record", record(err)).Msg("slot already claimed")
			}
			return nil
		case errors.Is(err, locker.ErrPaused):
			s.skip(js, slot, SkipPaused, 1, slot, false)
			return nil
		case errors.Is(err, locker.ErrNotObtained):
			// Overlap forbid: the run key is busy; the locker wrote the
			// "skipped:overlap" mark, so only this replica counts it.
			s.skip(js, slot, SkipOverlap, 1, slot, false)
			return nil
		case errors.Is(err, locker.ErrInvalid):
			log := s.jobLog(js, slot)
			log.Error().Err(err).Msg("claim refused as invalid")
			return nil
		case ctx.Err() != nil:
			return nil // shutting down
		}
		n := s.failures.Add(1)
		s.metrics.claimErrors.WithLabelValues(j.Name).Inc()
		now := clk.Now()
		wait := min(reconnectDelay(int(n)), retryUntil.Sub(now)-2*claimGuard)
		log := s.jobLog(js, slot)
		e := log.Warn()
		if attempt > 1 {
			e = log.Debug()
		}
		e.Err(err).Int("claim_attempt", attempt).Dur("retry_in", max(wait, 0)).Msg("claim failed; nothing runs without a claim")
		if wait <= 0 {
			s.skip(js, slot, SkipOutage, 1, slot, false)
			return nil
		}
		if sleep(ctx, clk, wait) != nil {
			return nil
		}
	}
}

// claimBounds returns when claiming (job, slot) stops, slot + jitter +
// max(catchup_window, OnTime), and when I/O retries stop: that deadline or
// the next slot (if any), whichever is first.
func claimBounds(j *jobs.Job, slot, next time.Time, jitter time.Duration) (deadline, retryUntil time.Time) {
	deadline = slot.Add(jitter + max(j.CatchupWindow, OnTime))
	retryUntil = deadline
	if !next.IsZero() && next.Before(retryUntil) {
		retryUntil = next
	}
	return deadline, retryUntil
}

// claimGuard ends a claim attempt this long before the next slot.
const claimGuard = 50 * time.Millisecond

// attemptCtx bounds one claim attempt to end claimGuard before until (on
// the scheduler's clock), and at least claimGuard from now.
//
// The attempt keeps ctx's values but not its cancellation: Run's context
// ending (SIGTERM) stops new attempts, not one already sent. Cutting a sent
// claim would make the locker undo it as skipped:aborted after the other
// replicas saw it win, and the slot would run nowhere.
func (s *Scheduler) attemptCtx(ctx context.Context, until time.Time) (context.Context, context.CancelFunc) {
	d := max(until.Sub(s.opts.Clock.Now())-claimGuard, claimGuard)
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// claimFor builds the Claim of (job, slot) for the job's overlap policy.
func (s *Scheduler) claimFor(js *jobState, slot time.Time) locker.Claim {
	j := js.job
	retention := s.MarkRetention(j)
	c := locker.Claim{
		Key:        js.keys.run,
		FenceKey:   js.keys.fence,
		TTL:        j.LockTTL,
		MarkKey:    js.keys.slot(slot),
		MarkTTL:    retention,
		PauseKey:   js.keys.paused,
		HistoryKey: js.keys.history,
		HistoryLen: s.opts.HistoryLen,
		HistoryTTL: s.opts.HistoryTTL,
	}
	if c.TTL <= 0 {
		c.TTL = 30 * time.Second
	}
	switch j.Overlap {
	case jobs.OverlapAllow:
		c.Key = js.keys.lease(slot)
	case jobs.OverlapReplace:
		c.Replace = true
	default:
		c.BusyRecord = "skipped:" + SkipOverlap
	}
	return c
}

// Record is the JSON a finished run leaves in its slot mark and in the job's
// history list.
type Record struct {
	Job        string    `json:"job"`
	Slot       time.Time `json:"slot"`
	Outcome    string    `json:"outcome"`
	Error      string    `json:"error,omitempty"`
	Fence      int64     `json:"fence"`
	Replica    string    `json:"replica"`
	Attempts   int       `json:"attempts"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
}

// execute runs the job under the lease, then records the outcome with
// Finish (which also ends the lease and the watchdog).
func (s *Scheduler) execute(js *jobState, slot time.Time, lease *locker.Lease) {
	j := js.job
	clk := s.opts.Clock
	log := s.log.With().Str("job", j.Name).Time("slot", slot).Int64("fence", lease.Fence()).Logger()

	// The run's context ends on lease loss (its cause ErrLeaseLost), on
	// timeout (ErrTimeout) and when the shutdown grace is over (ErrShutdown).
	ctx, cancel := context.WithCancelCause(lease.Ctx())
	defer cancel(nil)
	stop := context.AfterFunc(s.runsCtx, func() { cancel(context.Cause(s.runsCtx)) })
	defer stop()

	start := clk.Now()
	s.metrics.fireLag.Observe(start.Sub(slot).Seconds())
	attempts := 0
	run := Chain(Timeout(clk, j.Timeout), Retry(clk, j.Retry, &attempts))(js.run)
	err := run(ctx, jobs.Run{Job: j.Name, Slot: slot, Fence: lease.Fence(), Replica: s.opts.Replica, Logger: log})
	dur := clk.Now().Sub(start)
	out := outcome(ctx, err)

	rec := Record{Job: j.Name, Slot: slot, Outcome: out, Fence: lease.Fence(), Replica: s.opts.Replica,
		Attempts: attempts, Started: start.UTC(), DurationMS: dur.Milliseconds()}
	if err != nil {
		rec.Error = err.Error()
	}
	b, _ := json.Marshal(rec)
	fctx, fcancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	ferr := lease.Finish(fctx, string(b), s.MarkRetention(j))
	fcancel()

	s.metrics.runs.WithLabelValues(j.Name, out).Inc()
	e := log.Info()
	if out != OutcomeOK {
		e = log.Warn().AnErr("error", err)
	}
	if ferr != nil {
		e = log.Warn().AnErr("error", err).AnErr("finish_error", ferr)
	}
	e.Int("attempt", attempts).Str("outcome", out).Int64("duration_ms", dur.Milliseconds()).Msg("run")
}

// outcome classifies a run's result: the run context's cause first, then
// the causes jobs.Run joins into its error (a Timeout wrapper's context is
// inner to ctx).
func outcome(ctx context.Context, err error) string {
	if err == nil {
		return OutcomeOK
	}
	cause := err
	if ctx.Err() != nil {
		cause = errors.Join(context.Cause(ctx), err)
	}
	switch {
	case errors.Is(cause, locker.ErrLeaseLost):
		return OutcomeLeaseLost
	case errors.Is(cause, ErrShutdown):
		return OutcomeShutdown
	case errors.Is(cause, ErrTimeout):
		return OutcomeTimeout
	case errors.Is(err, ErrPanic) || errors.Is(err, jobs.ErrPanic):
		return OutcomePanic
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeError
}

// record returns the mark's value carried by an ErrSlotClaimed error.
func record(err error) string {
	var ne *locker.NotObtainedError
	if errors.As(err, &ne) {
		return ne.Record
	}
	return ""
}
