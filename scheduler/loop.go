package scheduler

import (
	"container/heap"
	"context"
	"time"
)

// loop is the one goroutine that owns the jobs' next and last slots: a
// timer over a min-heap of next slots. Each due slot is handed to its own
// firing goroutine (owned by s.wg). It returns when ctx ends.
//
// In the steady state a slot is handed out dispatchLead before it comes:
// its firing then waits at the slot's gate, which one timer opens at the
// slot, so 1,000 jobs due at the same instant all claim at once instead of
// one by one behind the dispatching (and behind the claims already made).
// Nothing is claimed earlier than the claim-ahead (claimLead: claimAhead,
// more while claims take long) before the slot on this replica's clock,
// and nothing runs before the slot.
func (s *Scheduler) loop(ctx context.Context) {
	clk := s.opts.Clock
	now := clk.Now()
	h := make(slotHeap, 0, len(s.jobs))
	for _, js := range s.snapshot() {
		// At start the most recent slot is considered too: catch-up
		// decides whether it is young enough to claim.
		if s.schedule(js, now, true) {
			h = append(h, js)
		}
	}
	heap.Init(&h)
	last := now
	for {
		if ctx.Err() != nil {
			return
		}
		now = clk.Now()
		if now.Before(last.Add(-maxSleep)) {
			// The clock stepped back (NTP, or a clock that was ahead came
			// back): the slots computed on the old time lie in the future.
			// Start over from now; a slot handled before cannot run twice
			// (the job's high-water slot refuses it).
			s.log.Warn().Int64("step_ms", last.Sub(now).Milliseconds()).Msg("clock stepped back: recomputing every job's next slot")
			for _, js := range h {
				if next := js.job.Schedule.Next(now); !next.IsZero() {
					js.last, js.next = js.job.Schedule.Prev(now), next
				}
			}
			heap.Init(&h)
		}
		last = now
		ahead := s.ahead.ahead()
		s.metrics.claimAhead.Set(ahead.Seconds())
		if len(h) == 0 || h[0].wake(ahead).After(now) {
			// Never sleep long on one timer: timers run on the monotonic
			// clock, which a suspended VM stops and an NTP step does not
			// move; re-reading the wall clock every maxSleep keeps a slot
			// from being found late (and skipped) on a healthy replica.
			d := maxSleep
			if len(h) > 0 {
				d = min(h[0].wake(ahead).Sub(now), maxSleep)
			}
			t := clk.NewTimer(d)
			select {
			case <-t.C():
			case r := <-s.reloads:
				t.Stop()
				h = s.applyReload(h, r, clk.Now())
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		js := h[0]
		s.due(ctx, js, now, ahead)
		if js.next.IsZero() {
			heap.Pop(&h)
			continue
		}
		heap.Fix(&h, 0)
	}
}

// schedule sets a job's first slot to consider: at start (catchUp) the most
// recent one, which catch-up may claim; after a reload, the next one (a
// changed job takes effect from its next slot). It reports whether the job
// goes in the heap (enabled, with a slot).
func (s *Scheduler) schedule(js *jobState, now time.Time, catchUp bool) bool {
	if !js.job.Enabled {
		s.log.Info().Str("job", js.job.Name).Msg("job disabled")
		return false
	}
	if catchUp {
		js.next = js.job.Schedule.Prev(now)
	} else {
		js.last, js.next = js.job.Schedule.Prev(now), time.Time{}
	}
	if js.next.IsZero() {
		js.next = js.job.Schedule.Next(now)
	}
	if js.next.IsZero() {
		s.log.Warn().Str("job", js.job.Name).Msg("schedule names no future slot")
		return false
	}
	return true
}

// applyReload rebuilds the heap from a reload's jobs: a job kept as it was
// keeps its slots; a new or changed one starts from its next slot; a
// removed one leaves (its running runs finish). Called by the loop only.
func (s *Scheduler) applyReload(h slotHeap, r reload, now time.Time) slotHeap {
	r.layout()
	old := map[*jobState]bool{}
	for _, js := range h {
		old[js] = true
	}
	h = h[:0]
	for _, js := range r.jobs {
		if old[js] {
			h = append(h, js) // unchanged: its next and last stand
		} else if s.schedule(js, now, false) {
			h = append(h, js)
		}
	}
	heap.Init(&h)
	close(r.done)
	return h
}

// due handles a job whose next slot has come: it fires the most recent slot
// if it is still within the catch-up window, logs and counts every slot it
// passes over, and moves next on.
func (s *Scheduler) due(ctx context.Context, js *jobState, now time.Time, ahead time.Duration) {
	window := max(js.job.CatchupWindow, OnTime)
	// Steady state: next is the most recent slot (the one after it is
	// still to come) and no slot lies between last and next, since next
	// was computed as Next of a time at or after last. This is what
	// decideCatchUp returns then, with one Next instead of a Prev search.
	if js.steady() {
		if after := js.nextAfter(js.next); after.IsZero() || after.After(now) {
			if now.Sub(js.next) < window {
				s.fire(ctx, js, js.last, js.next, after, s.gateAt(ctx, js, js.next, after, now, ahead))
			} else {
				s.passedOver(js, js.next, 1, js.next, false)
			}
			js.last, js.next = js.next, after
			return
		}
	}
	prev := js.job.Schedule.Prev(now)
	d := decideCatchUp(js.job.Schedule, js.last, now, prev, window)
	if d.Skipped > 0 && !js.last.IsZero() {
		s.passedOver(js, d.Newest, d.Skipped, d.Oldest, d.Capped)
	}
	if !d.Slot.IsZero() {
		s.fire(ctx, js, time.Time{}, d.Slot, js.job.Schedule.Next(d.Slot), nil)
	}
	if !prev.IsZero() && prev.After(js.last) {
		js.last = prev
	}
	js.next = js.job.Schedule.Next(now)
}

// dispatchLead is how long before a steady-state slot's claims go out
// (ahead of the slot, see claimLead) the loop hands it to its firing, which then
// waits at the slot's gate.
const dispatchLead = 20 * time.Millisecond

// steady reports whether next is the slot right after last: due then
// decides with one Next, and may do so before next comes.
func (js *jobState) steady() bool { return !js.last.IsZero() && js.next.After(js.last) }

// wake is when the loop handles the job: dispatchLead before its next
// slot's claims (ahead before the slot) in the steady state, at the slot
// otherwise.
func (js *jobState) wake(ahead time.Duration) time.Time {
	if js.steady() {
		return js.next.Add(-ahead - dispatchLead)
	}
	return js.next
}

// maxSleep bounds one wait of the loop (see loop).
const maxSleep = time.Second

// gate is shared by the firings of one instant that were handed out early.
type gate struct {
	slot  time.Time
	open  chan struct{} // closed ahead before slot (or when Run's context ends)
	ahead time.Duration // how long before slot the claims go out (claimLead)
	// attempt bounds the first claim attempt of the firings whose retry
	// bound is until (see claimBounds), so that 1,000 claims of one instant
	// share one timer; it is never cancelled early, and ends at its deadline.
	until   time.Time
	attempt context.Context
	starts  *starts // the instant's runs start before they are recorded
}

// gateAt returns the gate of slot for js (next is js's slot after it): one
// timer for all the jobs due at that instant, which opens when their
// claims go out. nil when that time has already come. Called by the loop
// only.
func (s *Scheduler) gateAt(ctx context.Context, js *jobState, slot, next, now time.Time, ahead time.Duration) *gate {
	if s.gate != nil && s.gate.slot.Equal(slot) {
		ahead = s.gate.ahead // the instant's claims go out together
	}
	opens := slot.Add(-ahead)
	if !opens.After(now) {
		return nil
	}
	_, until := claimBounds(js.job, slot, next, Jitter(js.job.Name, slot, js.job.Jitter))
	if g := s.gate; g != nil && g.slot.Equal(slot) && (g.until.Equal(until) || g.attempt == nil) {
		return g
	}
	g := &gate{slot: slot, open: make(chan struct{}), ahead: ahead, until: until}
	if s.gate != nil && s.gate.slot.Equal(slot) {
		g.open = s.gate.open // another retry bound at the same instant
		g.starts = s.gate.starts
	} else {
		g.starts = newStarts(s.opts.Clock, s.startsWait)
		t := s.opts.Clock.NewTimer(opens.Sub(now))
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(g.open)
			select {
			case <-t.C():
			case <-ctx.Done():
				t.Stop()
			}
		}()
	}
	// Replaced attempt contexts end at their deadlines; the last one is
	// cancelled when Run has waited for every firing (a shutdown must not
	// cut a claim already sent: see attemptCtx).
	g.attempt, s.gateCancel = s.attemptCtx(ctx, until)
	s.gate = g
	return g
}

// skipped logs at warn (within warnLimit's bound) and counts a skip that
// this replica recorded (its claim, or its recorder, wrote the slot's
// record): each skip is counted once in the cluster.
func (s *Scheduler) skipped(js *jobState, slot time.Time, reason string) {
	js.metrics.skip(reason).Inc()
	if s.warns.allow(warnSkipped) {
		s.log.Warn().Str("job", js.job.Name).Time("slot", slot).Str("reason", reason).Msg(warnMsg[warnSkipped])
	}
	s.recorded(js, skipRecord(js, slot, reason))
}

// passedOver handles n slots of a job (newest first back to oldest) that
// this replica found after their catch-up window (it was paused, or its
// timer woke late): other replicas may have run them. The newest
// maxLateRecords are queued for the recorder, which records each as
// skipped (late) if no replica ran it, leaving it to the replica that
// claims the slot when that one is live (recorder.addPassed).
func (s *Scheduler) passedOver(js *jobState, newest time.Time, n int, oldest time.Time, capped bool) {
	e := s.log.Info().Str("job", js.job.Name).Time("slot", newest)
	if n > 1 {
		e = e.Int("slots", n).Time("oldest", oldest).Bool("count_capped", capped)
	}
	e.Msg("slots found after their catch-up window; recorded as skipped (late) unless another replica ran them")
	t := newest
	for i := 0; i < min(n, maxLateRecords) && !t.IsZero() && !t.Before(oldest); i++ {
		s.recorder.addPassed(js, t)
		t = js.job.Schedule.Prev(t.Add(-time.Second))
	}
}

// slotHeap orders jobs by next slot, then by rank (a per-replica rotation
// of the declaration order, stable from slot to slot).
type slotHeap []*jobState

func (h slotHeap) Len() int { return len(h) }
func (h slotHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].rank < h[j].rank
}
func (h slotHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)   { *h = append(*h, x.(*jobState)) }
func (h *slotHeap) Pop() any {
	old := *h
	js := old[len(old)-1]
	*h = old[:len(old)-1]
	return js
}

// nextMemo remembers the last Next computed for a schedule that several
// jobs share (the same parsed spec and zone): 1,000 jobs due at the same
// instant then cost one Next, not 1,000. Used by the loop goroutine only.
type nextMemo struct {
	after, next time.Time
	ok          bool
}

// nextAfter is js.job.Schedule.Next(t), through the job's shared memo if any.
func (js *jobState) nextAfter(t time.Time) time.Time {
	m := js.memo
	if m != nil && m.ok && m.after.Equal(t) {
		return m.next
	}
	n := js.job.Schedule.Next(t)
	if m != nil {
		m.after, m.next, m.ok = t, n, true
	}
	return n
}
