package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// standby holds the firings of one instant that other replicas claim (see
// share): the loop decides so when it hands a slot out, so that
// such a firing costs no goroutine, no claim built and no timer of its own.
// One goroutine per instant looks again HandOff after the slot: when every
// replica that was first for one of them has beaten since the slot, still
// claims and kept its config, none of them needs this replica (the common
// case, decided once for the whole instant); otherwise each firing is
// decided as a lone one is (share.stepIn), and those this replica steps in
// for are claimed and run on workers.
type standby struct {
	slot time.Time
	mu   sync.Mutex
	// firings are the instant's firings held; views are the share views
	// their decisions read (usually one). Both are nil once the check took
	// them: later firings of the instant go to a new standby.
	firings []heldFiring
	views   []*shareView
	taken   bool
}

// heldFiring is one firing in standby: the job and its slot after this one.
type heldFiring struct {
	js   *jobState
	next time.Time
}

// hold puts (js, slot) in standby when this replica does not claim it at
// its slot (ranking.claims: another replica is first, or, when the first
// cannot be relied on, this one is not among the fallback claimers), and
// reports whether it did. It only takes firings without jitter; the others
// decide at their slot, in the firing. Called by the loop only.
func (s *Scheduler) hold(ctx context.Context, js *jobState, slot, next time.Time) bool {
	sh := s.share
	if !sh.on() || js.job.Jitter > 0 {
		return false
	}
	rk, v := sh.nowRanking()
	if rk.claims(js, slot) {
		return false
	}
	b := s.standby
	if b == nil || !b.slot.Equal(slot) || !b.add(js, next, v) {
		b = &standby{slot: slot}
		b.add(js, next, v)
		s.standby = b
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.checkStandby(ctx, b)
		}()
	}
	return true
}

// add holds a firing decided on view v; false once the check has begun.
func (b *standby) add(js *jobState, next time.Time, v *shareView) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken {
		return false
	}
	b.firings = append(b.firings, heldFiring{js: js, next: next})
	if n := len(b.views); n == 0 || b.views[n-1] != v {
		b.views = append(b.views, v)
	}
	return true
}

// take ends the standby's intake and returns what it holds.
func (b *standby) take() ([]heldFiring, []*shareView) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.taken = true
	fs, vs := b.firings, b.views
	b.firings, b.views = nil, nil
	return fs, vs
}

// checkStandby waits until HandOff after the standby's slot (plus this
// replica's clock lead, as a firing waits), then steps in for the firings
// whose first replicas have not beaten since. It returns at once when ctx
// ends (shutting down: stop claiming).
func (s *Scheduler) checkStandby(ctx context.Context, b *standby) {
	sh := s.share
	if err := sleepUntil(ctx, s.opts.Clock, b.slot.Add(s.clock.lead()+sh.handOff())); err != nil {
		b.take()
		return
	}
	firings, views := b.take()
	if sh.allBeat(views, b.slot) {
		return
	}
	rk := sh.sinceRanking(b.slot) // share.stepIn, once for the instant
	for _, f := range firings {
		if !rk.claims(f.js, b.slot) {
			continue
		}
		s.runStepIn(ctx, f.js, b.slot, f.next)
	}
}

// runStepIn claims and runs (js, slot) on a worker, for a first replica
// that has not beaten since the slot.
func (s *Scheduler) runStepIn(ctx context.Context, js *jobState, slot, next time.Time) {
	s.steppingIn(js, slot)
	s.wg.Add(1)
	s.workers.do(func() {
		defer s.wg.Done()
		jitter := Jitter(js.job.Name, slot, js.job.Jitter)
		if bid := s.slotBid(js, time.Time{}, slot, jitter, claimAhead); bid != nil {
			s.claimAndRun(ctx, js, slot, next, jitter, nil, bid, true)
		}
	})
}

// steppingIn counts and logs a step-in for (js, slot).
func (s *Scheduler) steppingIn(js *jobState, slot time.Time) {
	s.metrics.stepIns.Inc()
	if e := s.log.Debug(); e.Enabled() {
		e.Str("job", js.job.Name).Time("slot", slot).Msg("stepping in: the replica first for this firing has not beaten since its slot")
	}
}

// liveNow is first's test of a replica in view v: it beat within HandOff.
func (sh *share) liveNow(v *shareView, r store.LiveReplica) bool {
	return v.live.Now.Sub(r.Beat) <= sh.handOff()
}

// allBeat says whether, in a fresh view, every replica that could have
// claimed in the views firings were decided on (live then, registered with
// the config it beat; also one that said it was off, which claims when
// every replica above it is off too) has beaten since due in the state and
// with the config it had: each of those firings then had the replicas that
// were to claim it claim it, and nobody steps in. False when this replica
// cannot tell.
func (sh *share) allBeat(views []*shareView, due time.Time) bool {
	now := sh.view.Load()
	if now == nil || !sh.fresh(now) {
		return false
	}
	me := sh.s.opts.Replica
	for _, v := range views {
		for rid, r := range v.live.Replicas {
			if rid == me || !sh.liveNow(v, r) {
				continue // not ranked in v
			}
			cur, ok := now.live.Replicas[rid]
			if !ok || cur.Beat.Before(due) || cur.State != r.State {
				return false
			}
		}
	}
	return true
}
