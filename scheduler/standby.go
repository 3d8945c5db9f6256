package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// standby holds the firings due by one instant that other replicas claim
// (see share): the loop decides so when it hands a slot out, so that
// such a firing costs no goroutine, no claim built and no timer of its own.
// One goroutine per standby looks again HandOff after its instant: when
// every replica that was first for one of them has beaten since then,
// still claims and kept its config, none of them needs this replica (the
// common case, decided once for the whole standby); otherwise each firing
// is decided as a lone one is (share.stepIn), and those this replica steps
// in for are claimed and run on workers. Firings without jitter share
// their slot's standby; firings with jitter share one per jitterBucket of
// due times (see hold).
type standby struct {
	due time.Time // every firing held is due by then
	mu  sync.Mutex
	// firings are the firings held; views are the share views their
	// decisions read (usually one). Both are nil once the check took
	// them: later firings go to a new standby.
	firings []heldFiring
	views   []*shareView
	taken   bool
}

// heldFiring is one firing in standby: the job, its slot and its slot
// after this one.
type heldFiring struct {
	js         *jobState
	slot, next time.Time
}

// jitterBucket is the span of due times whose firings with jitter share a
// standby: their check comes at the bucket's end, so a step-in for one of
// them comes up to jitterBucket later than a lone firing's would, and a
// replica with 1,000 such firings a second spread over 500 ms wakes a
// standby 20 times a second instead of a worker 1,000 times.
const jitterBucket = 50 * time.Millisecond

// hold puts (js, slot) in standby when this replica does not claim it at
// its slot (ranking.claims: another replica is first, or, when the first
// cannot be relied on, this one is not among the fallback claimers), and
// reports whether it did. Called by the loop only.
func (s *Scheduler) hold(ctx context.Context, js *jobState, slot, next time.Time) bool {
	sh := s.share
	if !sh.on() {
		return false
	}
	rk, v := sh.nowRanking()
	if rk.claims(js, slot) {
		return false
	}
	if js.job.Jitter > 0 {
		s.holdJittered(ctx, js, slot, next, v)
		return true
	}
	b := s.standby
	if b == nil || !b.due.Equal(slot) || !b.add(js, slot, next, v) {
		b = &standby{due: slot}
		b.add(js, slot, next, v)
		s.standby = b
		s.startStandby(ctx, b)
	}
	return true
}

// holdJittered holds a firing with jitter in the standby of its due's
// jitterBucket (keyed by its end in Unix ns: jobs' slots may carry
// different time zones), starting one when none takes it. Standbys whose
// bucket ended before slot are forgotten as the loop goes (their checks
// own them): no later firing is due in them. Called by the loop only.
func (s *Scheduler) holdJittered(ctx context.Context, js *jobState, slot, next time.Time, v *shareView) {
	end := standbyDue(js, slot.Add(Jitter(js.job.Name, slot, js.job.Jitter)))
	key := end.UnixNano()
	if b := s.jittered[key]; b != nil && b.add(js, slot, next, v) {
		return
	}
	for at := range s.jittered {
		if at < slot.UnixNano() {
			delete(s.jittered, at)
		}
	}
	b := &standby{due: end}
	b.add(js, slot, next, v)
	if s.jittered == nil {
		s.jittered = map[int64]*standby{}
	}
	s.jittered[key] = b
	s.startStandby(ctx, b)
}

// standbyDue is the instant by which a firing of js due at due (its slot
// plus its jitter) is due in its standby, and a replica that holds it
// looks again HandOff after it: due itself without jitter (the slot);
// with jitter, the end of the jitterBucket due falls in. Callers pass the
// due they have, so the jitter's hash is not taken twice.
func standbyDue(js *jobState, due time.Time) time.Time {
	if js.job.Jitter <= 0 {
		return due
	}
	return due.Truncate(jitterBucket).Add(jitterBucket)
}

// startStandby starts b's check, owned by Run (s.wg).
func (s *Scheduler) startStandby(ctx context.Context, b *standby) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.checkStandby(ctx, b)
	}()
}

// add holds a firing decided on view v; false once the check has begun.
func (b *standby) add(js *jobState, slot, next time.Time, v *shareView) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken {
		return false
	}
	b.firings = append(b.firings, heldFiring{js: js, slot: slot, next: next})
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

// checkStandby waits until HandOff after the standby's instant (plus this
// replica's clock lead, as a firing waits), then steps in for the firings
// whose first replicas have not beaten since they were due. It returns at
// once when ctx ends (shutting down: stop claiming).
func (s *Scheduler) checkStandby(ctx context.Context, b *standby) {
	sh := s.share
	if err := sleepUntil(ctx, s.opts.Clock, b.due.Add(s.clock.lead()+sh.handOff())); err != nil {
		b.take()
		return
	}
	firings, views := b.take()
	if sh.allBeat(views, b.due) {
		return // beaten since every firing's due
	}
	// share.stepIn, once per due: once for a slot's firings without jitter
	var rk *ranking
	var rkDue time.Time
	for _, f := range firings {
		due := f.slot.Add(Jitter(f.js.job.Name, f.slot, f.js.job.Jitter))
		if rk == nil || !due.Equal(rkDue) {
			rk, rkDue = sh.sinceRanking(due), due
		}
		if rk.claims(f.js, f.slot) {
			s.runStepIn(ctx, f.js, f.slot, f.next)
		}
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
