package scheduler

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// fire starts the firing that claims and runs (job, slot), on a worker
// goroutine (see workers), unless the firing waits in standby for another
// replica (see hold). prev is the job's slot before slot when the loop
// knows it (zero otherwise; see prevWait). Called by the loop only; the
// firing is counted in s.wg and ends when the run is recorded, or at once
// when claiming is over (ctx ended).
func (s *Scheduler) fire(ctx context.Context, js *jobState, prev, slot, next time.Time, g *gate) {
	if s.hold(ctx, js, slot, next) {
		return // another replica is first: in standby (see hold)
	}
	s.wg.Add(1)
	s.workers.do(func() {
		defer s.wg.Done()
		s.firing(ctx, js, prev, slot, next, g)
	})
}

// firing waits for the slot (its gate, when handed out early), the slot's
// jitter and this replica's clock lead over Redis, claims it (retrying the
// same claim while the slot is claimable), and runs it under the lease.
// prev and next are the job's slots before and after slot (zero: not
// known, none); g is nil when the slot has already come.
func (s *Scheduler) firing(ctx context.Context, js *jobState, prev, slot, next time.Time, g *gate) {
	j := js.job
	jitter := Jitter(j.Name, slot, j.Jitter)
	ahead := claimAhead // dispatched late: the slot has come or nearly
	if g != nil {
		ahead = g.ahead
	}
	// The firing's claim is built before the slot comes (keys, records,
	// the script's line): at the slot, a replica with thousands of jobs
	// due only sends. A firing that another replica claims waits in
	// standby instead (see hold), with no claim built.
	bid := s.slotBid(js, prev, slot, jitter, ahead)
	if bid == nil {
		return
	}
	if g != nil {
		select {
		case <-g.open:
		case <-ctx.Done():
			return // shutting down: stop claiming
		}
	}
	due := slot.Add(jitter)
	if err := sleepUntil(ctx, s.opts.Clock, due.Add(s.clock.lead()-ahead)); err != nil {
		return // shutting down: stop claiming
	}
	steppedIn := false
	if !s.share.first(js, slot) {
		// Another replica is first for this firing: look again once it
		// must have beaten since the slot, and step in if it has not.
		if err := sleepUntil(ctx, s.opts.Clock, due.Add(s.clock.lead()+s.share.handOff())); err != nil {
			return
		}
		if !s.share.stepIn(js, slot, due) {
			return
		}
		s.steppingIn(js, slot)
		steppedIn = true
	}
	s.claimAndRun(ctx, js, slot, next, jitter, g, bid, steppedIn)
}

// slotBid builds the Bid of (js, slot), a claim sent ahead of the slot,
// which waits for the job's slot before it, prev, while a replica may
// still step in for that one (see prevWait; zero prev: no wait); nil,
// logged, when the claim is refused as invalid.
func (s *Scheduler) slotBid(js *jobState, prev, slot time.Time, jitter, ahead time.Duration) *locker.Bid {
	c := s.claimFor(js, slot, jitter, ahead, 0)
	if until := s.prevWait(js, prev, slot, jitter, ahead); !until.IsZero() {
		c.PrevSlot, c.PrevUntil = prev, until
	}
	bid, err := s.locker.Bid(c)
	if err != nil {
		log := s.jobLog(js, slot)
		log.Error().Err(err).Msg("claim refused as invalid")
		return nil
	}
	return bid
}

// claimAndRun claims (js, slot) with bid (see claim) and, once won, runs
// it when the slot is due.
func (s *Scheduler) claimAndRun(ctx context.Context, js *jobState, slot, next time.Time, jitter time.Duration, g *gate, bid *locker.Bid, steppedIn bool) {
	lease := s.claim(ctx, js, slot, next, jitter, g, bid, steppedIn)
	if lease == nil {
		return
	}
	var st *starts
	if g != nil && jitter == 0 {
		st = g.starts
		st.won()
	}
	// Claimed ahead: the run starts when the slot is due, also when
	// shutdown began meanwhile (the wait is short): by this replica's
	// clock, and by Redis's as the claim's reply and the node's recent
	// replies tell it (lease.Due), so that a clock that stepped ahead since
	// its last check cannot start it early.
	wctx := context.WithoutCancel(ctx)
	_ = sleepUntil(wctx, s.opts.Clock, slot.Add(jitter+s.clock.lead()))
	_ = sleep(wctx, s.opts.Clock, time.Until(lease.Due()))
	s.execute(js, slot, lease, false, st)
}

// prevWait is until when, on Redis's clock, the claim of (js, slot) waits
// for the job's slot before it, prev, to be decided (locker's
// Claim.PrevUntil): a replica stepping in for prev claims it HandOff after
// its due (after its standbyDue, for a replica that held it), and its
// claim may take ahead to arrive. Claimed first, slot
// would pass prev over, recorded late: with a short period and jitter, or
// when claims go out far ahead of their slot (claimLead under load), the
// next slot's claims go out before the step-in. Never later than slot's
// due; zero when prev is unknown, sharing is off, no replica may have
// stalled since prev was due (share.mayStepIn: a wait under load would
// only add claims), or the wait is over before the claim goes out.
func (s *Scheduler) prevWait(js *jobState, prev, slot time.Time, jitter, ahead time.Duration) time.Time {
	if prev.IsZero() || !s.share.on() {
		return time.Time{}
	}
	due, prevDue := slot.Add(jitter), prev.Add(Jitter(js.job.Name, prev, js.job.Jitter))
	until := minTime(standbyDue(js, prevDue).Add(s.share.handOff()+ahead), due)
	if !until.After(due.Add(-ahead)) || !s.share.mayStepIn(prevDue) {
		return time.Time{}
	}
	return until
}

// jobLog is the logger of (job, slot). Built only when a line is written:
// a claim that another replica won logs nothing, and building a child
// logger for each of thousands of claims a second is measurable.
func (s *Scheduler) jobLog(js *jobState, slot time.Time) zerolog.Logger {
	return s.log.With().Str("job", js.job.Name).Time("slot", slot).Logger()
}

// claim obtains the lease for (job, slot) or returns nil after logging and
// counting why not. Every attempt is the same claim (one Bid, one token),
// so a claim whose reply was lost or late is retried as itself and never
// lost to its own retry. Attempts stop at the claim deadline, slot + jitter
// + max(catchup_window, OnTime), and I/O retries also stop when the next
// slot comes (that one is then the most recent missed slot, and it retries
// in turn). A claim given up is withdrawn if it may have won (its mark then
// records the slot as aborted), and the slot's skip is recorded once no
// replica may claim it any more, if none did (see recorder). A step-in
// (steppedIn) claims HandOff after the slot's due (its standbyDue, when it
// was held): its bound before the next slot moves on by as much, within
// the claim deadline.
func (s *Scheduler) claim(ctx context.Context, js *jobState, slot, next time.Time, jitter time.Duration, g *gate, bid *locker.Bid, steppedIn bool) *locker.Lease {
	j := js.job
	clk := s.opts.Clock
	if !s.clock.healthy() {
		s.recorder.add(js, slot, store.ReasonClock, nil)
		return nil
	}
	// The bounds are on Redis's clock; this replica's runs lead ahead.
	lead := s.clock.lead()
	deadline, retryUntil := claimBounds(j, slot, next, jitter)
	deadline, retryUntil = deadline.Add(lead), retryUntil.Add(lead)
	if steppedIn {
		due := slot.Add(jitter)
		late := standbyDue(js, due).Sub(due) + s.share.handOff()
		retryUntil = minTime(deadline, retryUntil.Add(late))
	}
	extended := false // retryUntil moved on for a claim that reached Redis
	split := false    // the last attempt's votes split (quorum mode)
	// extend moves retryUntil on by OnTime, once and within the claim
	// deadline, for an attempt that may have won where it was not
	// answered: the slot is then held, so nobody else can run it.
	extend := func() {
		if !extended {
			extended, retryUntil = true, minTime(deadline, retryUntil.Add(OnTime))
		}
	}
	giveUp := func(reason string) *locker.Lease {
		if !bid.Sent() {
			bid = nil
		} else if s.withdraw(js, slot, bid) {
			bid = nil
		}
		if ctx.Err() != nil {
			return nil // shutting down: other replicas may still claim it
		}
		s.recorder.add(js, slot, reason, bid)
		return nil
	}
	for attempt := 1; ; attempt++ {
		switch {
		case ctx.Err() != nil:
			return giveUp(store.ReasonAborted) // shutting down: no new attempt
		case clk.Now().After(deadline) && split:
			// Woken late from the wait before a new vote (a starved
			// host): the slot was lost to the split, not to lateness.
			return giveUp(store.ReasonSplit)
		case clk.Now().After(deadline):
			return giveUp(store.ReasonLate)
		case !s.clock.healthy():
			return giveUp(store.ReasonClock)
		}
		if attempt == 1 && s.shed(retryUntil) {
			s.metrics.claimsShed.Inc()
			return giveUp(store.ReasonLate)
		}
		var lease *locker.Lease
		var err error
		sent := s.clk.base.Now() // uncorrected: a clock correction meanwhile does not move it
		if attempt == 1 && g != nil && g.attempt != nil && g.until.Equal(retryUntil) {
			// The same bound as every first attempt of this instant.
			lease, err = bid.Obtain(g.attempt)
		} else {
			actx, acancel := s.attemptCtx(ctx, retryUntil)
			lease, err = bid.Obtain(actx)
			acancel()
		}
		if attempt == 1 && ctx.Err() == nil {
			// How long it took, queueing included, sets how early the next
			// slots' claims go out (claimLead). A claim that timed out
			// took at least that long: when Redis answers later than the
			// read timeout, the claim-ahead must rise the most.
			s.ahead.observe(s.clk.base.Now().Sub(sent))
		}
		split = errors.Is(err, locker.ErrSplitVote)
		if err == nil {
			s.reconnect.ok()
			if clk.Now().After(deadline) {
				// Confirmed after the claim deadline (this replica paused
				// between the check above and the reply): too late to run.
				// The slot stays decided, recorded as late.
				fctx, fcancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
				_ = lease.Finish(fctx, store.Skip(j.Name, slot, store.ReasonLate))
				fcancel()
				s.skipped(js, slot, store.ReasonLate)
				return nil
			}
			return lease
		}
		var ne *locker.NotObtainedError
		switch {
		case errors.As(err, &ne) && ne.Minority:
			// Quorum mode: the masters refused for mixed reasons (a busy
			// lease on one, the slot passed over or before the job's
			// first sight on another), and the slot's record stands on a
			// minority of them. The recorder completes it once no replica
			// may claim the slot, and counts the skip then.
			if reason := minorityReason(ne); reason != "" {
				s.recorder.add(js, slot, reason, nil)
			}
			return nil
		case errors.Is(err, locker.ErrSlotClaimed):
			// Another replica (or this one, before a restart) has it or
			// recorded it; a skip is counted once, by the replica that
			// recorded it.
			if e := s.log.Debug(); e.Enabled() {
				e.Str("job", j.Name).Time("slot", slot).Err(err).Msg("slot already claimed")
			}
			return nil
		case errors.Is(err, locker.ErrPaused):
			s.skipped(js, slot, store.ReasonPaused)
			return nil
		case errors.Is(err, locker.ErrLate):
			s.skipped(js, slot, store.ReasonLate)
			return nil
		case errors.Is(err, locker.ErrNotObtained):
			// Overlap forbid: the lease is busy; or replace: a later claim
			// replaced this one before it took the lease. The claim
			// recorded the slot as skipped, so only this replica counts it.
			s.skipped(js, slot, store.ReasonOverlap)
			return nil
		case errors.Is(err, locker.ErrUnborn):
			log := s.jobLog(js, slot)
			log.Info().Err(err).Msg("slot before the job was first seen by the cluster: not caught up")
			return nil
		case errors.Is(err, locker.ErrEarly) && errors.As(err, &ne):
			// Not due on Redis's clock: sent ahead (claimLead) while the
			// job is paused or its lease busy, or while a step-in may
			// still claim the slot before (prevWait), or this replica's
			// clock is ahead (Redis asks for a longer wait than its clock
			// says). The same claim is sent again once the wait is over
			// (see earlyNext), unless that is past the claim's bound.
			if ne.Prev {
				s.metrics.prevWaits.Inc()
			}
			now := clk.Now()
			next := earlyNext(ne.Wait, s.clk.base.Now().Sub(sent), slot.Add(jitter+lead).Sub(now), retryUntil.Sub(now), s.opts.MaxClockSkew)
			if next.recheck {
				s.clock.recheck()
			}
			if next.giveUp != "" {
				return giveUp(next.giveUp)
			}
			if next.sleep > 0 && sleep(ctx, clk, next.sleep+time.Millisecond) != nil {
				return giveUp(store.ReasonAborted)
			}
			continue
		case errors.Is(err, locker.ErrInvalid):
			log := s.jobLog(js, slot)
			log.Error().Err(err).Msg("claim refused as invalid")
			return nil
		case errors.Is(err, locker.ErrSplitVote):
			// Quorum mode: the claimants' votes split again after the
			// locker's own retries. This is no outage: send the same
			// claim again after a short random delay, until the next
			// slot. Or the attempt after the split was cut short by its
			// bound, in this replica's queue or waiting for late replies
			// (ErrCutShort): the split stands, but the attempt may have
			// won where it was not answered, so, as after an I/O error,
			// its retries may go on past the next slot, for OnTime more
			// (within the claim deadline). A claim given up is withdrawn
			// (giveUp).
			if !errors.Is(err, locker.ErrCutShort) {
				s.metrics.splitVotes.Inc() // a vote, not an attempt cut short
			} else {
				extend()
			}
			wait := splitRetry(attempt)
			if !clk.Now().Add(wait).Before(retryUntil.Add(-claimGuard)) {
				return giveUp(store.ReasonSplit)
			}
			if sleep(ctx, clk, wait) != nil {
				return giveUp(store.ReasonAborted)
			}
			continue
		}
		if errors.Is(err, locker.ErrNotSent) {
			// The attempt waited in this replica's queue until its bound
			// (the next slot): this replica is behind, Redis did not fail.
			// Nothing reached Redis, so nothing to withdraw, no backoff,
			// and the next slot supersedes this one: late.
			if clk.Now().Before(retryUntil.Add(-2 * claimGuard)) {
				continue
			}
			return giveUp(store.ReasonLate)
		}
		// I/O error, no quorum, or confirmed too late: the claim may have
		// won. Retry it as itself after the shared reconnect backoff, or as
		// soon as Redis answers again. A claim that reached Redis holds the
		// slot if it won, so nobody else can run it: its retries may go on
		// past the next slot, for OnTime more (within the claim deadline),
		// before it is given up.
		if bid.Sent() {
			extend()
		}
		backoff := s.reconnect.failed()
		js.metrics.claimErrors.Inc()
		s.rights.seen(err)
		now := clk.Now()
		wait := min(backoff, retryUntil.Sub(now)-2*claimGuard)
		// A first attempt's failure is a warning (within warnLimit's
		// bound); the retries', and the first attempts' beyond the bound,
		// are debug lines.
		level := zerolog.DebugLevel
		if attempt == 1 && s.warns.allow(warnClaimFailed) {
			level = zerolog.WarnLevel
		}
		s.log.WithLevel(level).Str("job", j.Name).Time("slot", slot).Err(err).Int("claim_attempt", attempt).
			Int64("retry_in_ms", max(wait, 0).Milliseconds()).Msg(warnMsg[warnClaimFailed])
		if wait <= 0 {
			return giveUp(store.ReasonOutage)
		}
		if s.reconnect.wait(ctx, clk, wait) != nil {
			return giveUp(store.ReasonAborted)
		}
	}
}

// shed says whether a claim bounded by until is given up unsent, as late:
// in quorum mode, while this replica's calls to Redis wait in its own
// queue (Locker.Backlog, 0 while at most a batch waits) longer than half
// the time the claim has left. Sent, it would reach some masters and not
// others before its bound, or win too late, and its withdrawal and skip
// would cost the masters more than its run: in an overload the firings
// shed keep the queue short enough that those sent run. On one node a
// claim written late wins or loses whole, and one still queued at its
// bound is dropped unsent at no cost, so nothing is shed there (shedding
// lost firings that would have run: see bench/README.md).
func (s *Scheduler) shed(until time.Time) bool {
	if s.locker.Nodes() == 1 {
		return false
	}
	b := s.locker.Backlog()
	return b > 0 && b > (until.Sub(s.opts.Clock.Now())-claimGuard)/2
}

// splitRetry is the random delay before a claim whose votes split is sent
// again: up to 50 ms, times the attempt (at most 8), so that claimants
// that split drift apart.
func splitRetry(attempt int) time.Duration {
	return rand.N(time.Duration(min(attempt, 8))*50*time.Millisecond) + time.Millisecond
}

// withdraw gives up a bid that may have won, at once (bounded by
// CallTimeout); false when Redis could not be told (the recorder retries).
func (s *Scheduler) withdraw(js *jobState, slot time.Time, bid *locker.Bid) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	err := bid.Withdraw(ctx)
	if err != nil {
		if s.warns.allow(warnWithdrawFailed) {
			s.log.Warn().Str("job", js.job.Name).Time("slot", slot).Err(err).Msg(warnMsg[warnWithdrawFailed])
		}
		return false
	}
	return true
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

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// earlyStep is what a claim answered early does next.
type earlyStep struct {
	sleep   time.Duration // before the claim is sent again (0: at once)
	giveUp  string        // not "": the slot is given up, for this reason
	recheck bool          // Redis's clock is behind this replica's: measure it
}

// earlyNext decides what a claim answered early does, given wait, the
// reply's wait on Redis's clock, took, how long ago the attempt began,
// and toDue and toUntil, how long until the slot is due and until the
// claim's bound on this replica's (corrected) clock. Redis counted wait
// from when it ran the claim, somewhere in took: the reply may have
// waited since, behind a burst in Redis's output or in a starved replica,
// for longer than wait. So at least wait-took is left, and at most wait;
// within those bounds the claim is sent again when this replica's clock
// says the slot is due, and at once when the wait is over. It is given up
// as a clock fault when even the least wait left is longer than
// MaxClockSkew (maxSkew) and than toDue, or ends past the bound while this
// clock says the slot is due before it; and as late when, at the pace of
// this attempt, the claim sent again would be answered past the bound (the
// reply came too late: the replica or Redis is behind, and a claim cut
// short there costs Redis more than a skip).
func earlyNext(wait, took, toDue, toUntil, maxSkew time.Duration) earlyStep {
	took = max(took, 0)
	least := wait - took
	step := earlyStep{sleep: max(min(max(toDue, least), wait), 0), recheck: least > toDue+clockSlack}
	switch {
	case least > max(maxSkew, toDue):
		step.giveUp = store.ReasonClock
	case step.sleep >= toUntil && step.recheck:
		step.giveUp = store.ReasonClock
	case step.sleep+took >= toUntil-claimGuard:
		step.giveUp = store.ReasonLate
	}
	return step
}

// claimGuard ends a claim attempt this long before the next slot.
const claimGuard = 50 * time.Millisecond

// clockSlack is how much longer than this replica's clock says Redis may
// ask an early claim to wait before the clock is checked again.
const clockSlack = 20 * time.Millisecond

// attemptCtx bounds one claim attempt to end claimGuard before until (on
// the scheduler's clock), and at least claimGuard from now.
//
// The attempt keeps ctx's values but not its cancellation: Run's context
// ending (SIGTERM) stops new attempts, not one already sent.
func (s *Scheduler) attemptCtx(ctx context.Context, until time.Time) (context.Context, context.CancelFunc) {
	d := max(until.Sub(s.opts.Clock.Now())-claimGuard, claimGuard)
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// claimFor builds the Claim of (job, slot) for the job's overlap policy: a
// slot claim, which may go out ahead of the slot, or, with manual != 0
// (the trigger's Unix nanoseconds), a manual run's claim, with a mark of
// its own and no slot checks (ahead unused).
func (s *Scheduler) claimFor(js *jobState, slot time.Time, jitter, ahead time.Duration, manual int64) locker.Claim {
	j := js.job
	k := s.keysOf(js)
	retention := s.MarkRetention(j)
	// A claim built before its slot says the run started when it is due.
	started := s.opts.Clock.Now()
	if due := slot.Add(jitter); manual == 0 && due.After(started) {
		started = due
	}
	running := store.Record{Job: j.Name, Slot: slot, Outcome: store.OutcomeRunning, Replica: s.opts.Replica,
		Started: started, Manual: manual != 0}
	c := locker.Claim{
		Key:        k.Lease(),
		MetaKey:    k.Meta(),
		TTL:        j.LockTTL,
		MarkTTL:    retention,
		Retention:  retention,
		Running:    running.Encode(),
		HistoryKey: k.History(),
		HistoryLen: j.History.OrDefault().Keep,
		HistoryTTL: j.History.OrDefault().MaxAge,
		RunningKey: k.Running(),
	}
	if c.TTL <= 0 {
		c.TTL = jobs.DefaultLockTTL
	}
	if j.Command != nil {
		// A command is killed at most KillGrace after it is told to stop:
		// a lease that cannot be renewed is given up that much earlier, so
		// that the command is gone before another replica can take it.
		c.StopTime = j.Command.KillGrace
	}
	if manual == 0 {
		deadline, _ := claimBounds(j, slot, time.Time{}, jitter)
		c.MarkKey = k.Mark(slot)
		c.Slot = slot
		c.FirstSeen = js.since
		c.RingKey = k.Ring()
		c.PauseKey = k.Paused()
		c.NotBefore, c.Due = slot.Add(jitter-ahead), slot.Add(jitter)
		c.NotAfter = deadline.Add(s.opts.MaxClockSkew)
		c.MarkFloor = MarkFloor
		c.Records = locker.Records{
			Paused: store.Skip(j.Name, slot, store.ReasonPaused),
			Late:   store.Skip(j.Name, slot, store.ReasonLate),
			// The claim may have won: its record names the claimant.
			Aborted: store.Record{Job: j.Name, Slot: slot, Outcome: store.OutcomeSkipped, Reason: store.ReasonAborted,
				Replica: s.opts.Replica}.Encode(),
		}
	} else {
		c.MarkKey = k.ManualMark(manual)
		c.RecordAt = time.Unix(0, manual)
		c.Records.Aborted = store.Record{Job: j.Name, Slot: slot, Outcome: store.OutcomeSkipped,
			Reason: store.ReasonAborted, Replica: s.opts.Replica, Manual: true}.Encode()
	}
	switch j.Overlap {
	case jobs.OverlapAllow:
		c.Key = k.SlotLease(slot)
		if manual != 0 {
			c.Key = k.ManualLease(manual)
		}
	case jobs.OverlapReplace:
		c.Replace, c.NextKey, c.Channel = true, k.Next(), k.Events()
		// A claim that waits for the run it replaces, and is replaced in
		// turn by the next slot's before that run stops, never runs: it is
		// skipped (overlap), as forbid's refused claim is.
		fallthrough
	default:
		// Refused while the job runs (forbid), or replaced in turn before
		// it started (replace): on record, a trigger's for whoever asked.
		c.Records.Busy = store.Record{Job: j.Name, Slot: slot, Outcome: store.OutcomeSkipped,
			Reason: store.ReasonOverlap, Manual: manual != 0}.Encode()
	}
	return c
}

// execute runs the job under the lease, then records the outcome with
// Finish (which also ends the lease and the watchdog). st, when not nil,
// counted the run as due at its instant (see starts): it is told when the
// run starts, and the record waits for the instant's other runs to start.
func (s *Scheduler) execute(js *jobState, slot time.Time, lease *locker.Lease, manual bool, st *starts) {
	j := js.job
	clk := s.opts.Clock
	log := s.log.Hook(&runFields{job: j.Name, slot: slot, fence: lease.Fence()})

	// The run's context ends on lease loss (its cause ErrLeaseLost), on
	// replacement (ErrReplaced too), on timeout (ErrTimeout) and when the
	// shutdown grace is over (ErrShutdown).
	ctx, cancel := context.WithCancelCause(lease.Ctx())
	defer cancel(nil)
	stop := context.AfterFunc(s.runsCtx, func() { cancel(context.Cause(s.runsCtx)) })
	defer stop()

	start := clk.Now()
	if !manual {
		js.metrics.observeFireLag(start.Sub(slot).Seconds())
	}
	running := &js.metrics.running
	running.Add(1)
	log.Info().Bool("manual", manual).Msg("run started")
	if st != nil {
		st.started()
	}
	attempts := 0
	tail := jobs.NewTail(j.OutputTail)
	fn := js.fn
	if fn == nil {
		fn = j.Run
	}
	run := Chain(Timeout(clk, j.Timeout), Retry(clk, j.Retry, &attempts), Recover())(fn)
	err := run(ctx, jobs.Run{Job: j.Name, Slot: slot, Fence: lease.Fence(), Replica: s.opts.Replica, Manual: manual, Logger: log, Output: tail})
	dur := clk.Now().Sub(start)
	out, reason := outcome(ctx, err)
	// Yield, so that the firings already woken at the slot can start
	// their runs before this one encodes its record and finishes: without
	// it, a replica with hundreds of runs at one instant started its last
	// run only after recording the others (a hint to the Go scheduler,
	// measured in bench/README.md, not a guarantee). The runs of an
	// instant that won their claims ahead also wait for each other (st).
	runtime.Gosched()
	if st != nil {
		st.wait()
	}

	// The record leaves the process (history, API, notifications): its
	// texts are redacted before anything else sees them.
	sec := s.opts.Secrets
	rec := store.Record{Job: j.Name, Slot: slot, Outcome: out, Reason: reason, Fence: lease.Fence(), Replica: s.opts.Replica,
		Attempts: attempts, Started: start, DurationMS: dur.Milliseconds(), Manual: manual, Output: sec.RedactTail(tail.String())}
	if err != nil {
		rec.Error = sec.Redact(err.Error())
	}
	fctx, fdone := s.finishCtx()
	ferr := lease.Finish(fctx, rec.Encode())
	fdone()
	s.rights.seen(ferr)
	var fe *locker.FinishError
	if ferr == nil || (errors.As(ferr, &fe) && fe.Recorded) {
		s.recorded(js, rec)
	}

	running.Add(-1)
	js.metrics.run(out).Inc()
	js.metrics.observeDuration(dur.Seconds())
	if out == store.OutcomeOK {
		js.metrics.lastSuccess.Set(float64(clk.Now().UnixMilli()) / 1000)
	}
	e := log.Info()
	if out != store.OutcomeOK || ferr != nil {
		e = log.Warn()
		if rec.Error != "" {
			e = e.Str("error", rec.Error) // redacted, as recorded
		}
		if ferr != nil {
			e = e.AnErr("finish_error", ferr)
		}
	}
	e.Int("attempt", attempts).Str("outcome", out).Str("reason", reason).Bool("manual", manual).Int64("duration_ms", dur.Milliseconds()).Msg("run")
}

// finishCtx is the context of recording a run: Finish retries (same token)
// while the run's mark can hold it, except once the shutdown grace is
// over, when it has CallTimeout more.
func (s *Scheduler) finishCtx() (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(s.runsCtx, func() { time.AfterFunc(s.opts.CallTimeout, cancel) })
	return ctx, func() {
		stop()
		cancel()
	}
}

// outcome classifies a run's result, and the reason of a lease lost to a
// replacement. The run context's cause comes first, also when the function
// returned nil after it: a run cut short (lease lost, timeout, shutdown) is
// recorded so even if its function ignored the cancellation.
func outcome(ctx context.Context, err error) (out, reason string) {
	cause := err
	if ctx.Err() != nil {
		cause = errors.Join(context.Cause(ctx), err)
	}
	switch {
	case cause == nil:
		return store.OutcomeOK, ""
	case errors.Is(cause, locker.ErrReplaced):
		return store.OutcomeLeaseLost, store.ReasonReplaced
	case errors.Is(cause, locker.ErrLeaseLost):
		return store.OutcomeLeaseLost, ""
	case errors.Is(cause, ErrShutdown):
		return store.OutcomeShutdown, ""
	case errors.Is(cause, ErrTimeout):
		return store.OutcomeTimeout, ""
	case errors.Is(err, ErrPanic) || errors.Is(err, jobs.ErrPanic):
		return store.OutcomePanic, ""
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return store.OutcomeCanceled, ""
	}
	return store.OutcomeError, ""
}

// minorityReason is the skip reason to complete on a majority for a
// refusal whose record stands on a minority of the masters
// (NotObtainedError.Minority): the claim's own (busy, paused, late), or
// the reason of the skip record it found; "" for a run's record, which
// only a claim that won writes (or a record that does not parse).
func minorityReason(ne *locker.NotObtainedError) string {
	switch {
	case errors.Is(ne.Reason, locker.ErrPaused):
		return store.ReasonPaused
	case errors.Is(ne.Reason, locker.ErrLate):
		return store.ReasonLate
	case errors.Is(ne.Reason, locker.ErrSlotClaimed):
		r, err := store.ParseRecord(ne.Record)
		if err != nil || r.Outcome != store.OutcomeSkipped {
			return ""
		}
		return r.Reason
	}
	return store.ReasonOverlap
}
