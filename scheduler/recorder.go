package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// recorder finishes what a firing could not: it records the skip of a slot
// that this replica gave up (outage), refused (clock) or found too late,
// once no replica may claim the slot any more and only if none did (so a
// slot ends in exactly one record, promise 9); and it retries withdrawing
// a bid that may have won when Redis could not be told at once. One
// goroutine, owned by Run, works through a queue ordered by due time,
// writing up to recordBatch due entries at once (they share pipelines, see
// locker). The queue is bounded in length (maxPending: an entry beyond it
// is dropped, counted and logged) and in age (an entry is dropped once
// Redis says that its record can no longer be written, or once the job's
// history would no longer keep it). An entry is small (the record is built
// when written), so that an overload of a minute at 10,000 firings a
// second fits.
type recorder struct {
	s    *Scheduler
	kick chan struct{}
	max  int // maxPending; tests lower it

	// decided is, by job name, the slot that Redis last reported with a
	// late reply (locker.NotObtainedError.Decided: the job's high-water,
	// or the latest slot below its ring's span): a skip of a slot up to
	// it, past its mark's window, is late too and is not sent (after a
	// long outage a job that fires often has thousands). Used by the
	// goroutine that writes records only (run, then drain); cleared when
	// the queue empties.
	decided map[string]time.Time

	mu       sync.Mutex
	queue    pendingHeap
	dropped  int // beyond the bound, since the last log line
	tooLateN int // too late to write, since the last log line
	agedN    int // older than the job's history keeps, since the last log line
}

// pending is one deferred write.
type pending struct {
	js     *jobState
	slot   time.Time
	reason string
	bid    *locker.Bid // not nil: withdraw it first (it may have won)
	due    time.Time   // on the scheduler's clock
	// passed: a slot this replica's loop found after its catch-up window,
	// whose record is left to the replica that claims the slot if that one
	// is live (see addPassed).
	passed bool
	tries  int
	index  int
}

// maxPending bounds the recorder's queue: a minute and a half of skips at
// 10,000 a second (about 100 bytes each).
const maxPending = 1 << 20

// recordBatch is how many due records the recorder writes at once, and
// withdrawBatch how many bids it withdraws at once (a goroutine each).
const (
	recordBatch   = 4096
	withdrawBatch = 256
)

// maxLateRecords bounds how many of the slots passed over at once (a
// replica waking late) are queued for a skip record; the rest are only
// counted in the log line.
const maxLateRecords = 100

func newRecorder(s *Scheduler) *recorder {
	return &recorder{s: s, kick: make(chan struct{}, 1), max: maxPending, decided: map[string]time.Time{}}
}

// now is the recorder's clock: this replica's, moved to Redis's while it
// is off by more than MaxClockSkew (clockWatch.off). A replica far behind
// Redis then still writes its skips (reason clock) within their mark's
// window on Redis's clock (closes to markLasts), and one far ahead does
// not send them before it.
func (r *recorder) now() time.Time {
	return r.s.opts.Clock.Now().Add(r.s.clock.off())
}

// closes is when no replica claims (js, slot) any more: after its window,
// on a clock at most MaxClockSkew behind.
func (r *recorder) closes(js *jobState, slot time.Time) time.Time {
	j := js.job
	return slot.Add(Jitter(j.Name, slot, j.Jitter) + max(j.CatchupWindow, OnTime) + r.s.opts.MaxClockSkew)
}

// markLasts is until when the mark of (js's job, slot), if a claim wrote
// one, surely still exists on Redis's clock; after it an absent mark proves
// nothing. A claim may land up to maxClaimAhead before its slot (its
// NotBefore), and a replica that dies right after it never renews its
// running mark, which then expires retention after the claim: so
// slot - maxClaimAhead + retention, not slot + retention.
func (r *recorder) markLasts(js *jobState, slot time.Time) time.Time {
	return slot.Add(r.s.MarkRetention(js.job) - maxClaimAhead)
}

// skipOf is the skip record of p, written while its run's mark, if any,
// surely exists (markLasts), or after that while the job's high-water slot
// is below p's or its ring of decided slots shows p's undecided (see
// locker.Skip).
func (r *recorder) skipOf(p *pending) locker.Skip {
	js := p.js
	j := js.job
	retention := r.s.MarkRetention(j)
	k := r.s.keysOf(js)
	return locker.Skip{
		MarkKey: k.Mark(p.slot), MetaKey: k.Meta(), RingKey: k.Ring(), Slot: p.slot, FirstSeen: js.since,
		Record: store.Skip(j.Name, p.slot, p.reason), Retention: retention,
		NotBefore: r.closes(js, p.slot), NotAfter: r.markLasts(js, p.slot),
		HistoryKey: k.History(), HistoryLen: j.History.OrDefault().Keep, HistoryTTL: j.History.OrDefault().MaxAge,
	}
}

// add queues the skip record of (job, slot) for reason, after withdrawing
// bid if not nil. Called by firings and the loop.
func (r *recorder) add(js *jobState, slot time.Time, reason string, bid *locker.Bid) {
	p := &pending{js: js, slot: slot, reason: reason, bid: bid}
	if bid == nil {
		p.due = r.closes(js, slot)
	} else {
		p.due = r.now()
	}
	r.push(p)
}

// addPassed queues the skip record (late) of a slot that this replica's
// loop found after its catch-up window. When the host is paused or
// starved every replica finds the same slots so, and were each to write
// their records, a slow moment would multiply the record writes by R and
// make every replica slower still. With work shared
// the record is left to the replicas that claim the slot: it comes due
// HandOff after closes, and is written only if the ranking then says this
// replica claims (js, slot) (share.first). A replica ranked above it that
// has beaten since closes is live, and writes its own.
func (r *recorder) addPassed(js *jobState, slot time.Time) {
	p := &pending{js: js, slot: slot, reason: store.ReasonLate, due: r.closes(js, slot)}
	if r.s.share.on() {
		p.passed = true
		p.due = p.due.Add(r.s.share.handOff())
	}
	r.push(p)
}

// push queues p, or drops and counts it beyond the queue's bound. A full
// queue first gives up its earliest skip if that one's mark may be gone
// (counted too late): after a long outage the queue is full of skips that
// only the job's high-water or ring can still prove, and a new skip, still
// within its mark's window, is surer to be written.
func (r *recorder) push(p *pending) {
	r.mu.Lock()
	if r.queue.Len() >= r.max {
		if top := r.queue[0]; top.bid == nil && r.markGone(top, r.now()) {
			heap.Pop(&r.queue)
			r.tooLateN++
		} else {
			r.dropped++
			r.mu.Unlock()
			return
		}
	}
	heap.Push(&r.queue, p)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// start runs the recorder until ctx ends or the returned func is called;
// that func stops it, waits for it, writes the records due by until (Run's
// shutdown deadline, on the scheduler's clock; see drain) and logs what is
// left: the records that Redis did not answer in time, and those not yet
// due, whose slots other replicas may still claim.
func (r *recorder) start(ctx context.Context) (stop func(until time.Time)) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	return func(until time.Time) {
		cancel()
		<-done
		r.drain(until)
		r.logDrops()
		due, later := r.left(r.now())
		if due > 0 {
			r.s.log.Warn().Int("slots", due).Dur("call_timeout", r.s.opts.CallTimeout).Msg("shutdown: skip records not written: Redis did not answer in time")
		}
		if later > 0 {
			r.s.log.Warn().Int("slots", later).Msg("shutdown: skip records not yet due are not written")
		}
	}
}

// drain writes, at shutdown, the entries due now, then those that come
// due by until (on the scheduler's clock), each once due: a failed
// attempt goes again as while running (after its backoff, or at once if
// it never left this replica), until until. Each round is bounded by
// CallTimeout, so drain returns at most that long after until.
func (r *recorder) drain(until time.Time) {
	clk := r.s.opts.Clock
	for {
		r.flush()
		next, ok := r.next()
		off := r.s.clock.off() // due times are on the recorder's clock (now)
		now := clk.Now()
		if !ok || next.Add(-off).After(until) || !now.Before(until) {
			return
		}
		if d := next.Sub(now.Add(off)); d > 0 {
			t := clk.NewTimer(d)
			<-t.C()
		}
	}
}

// next is the due time of the queue's earliest entry; false when empty.
func (r *recorder) next() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queue.Len() == 0 {
		return time.Time{}, false
	}
	return r.queue[0].due, true
}

// left counts the entries still queued at now: those due or tried (a
// failed attempt's backoff moves its due time on), and those not yet due.
func (r *recorder) left(now time.Time) (due, later int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.queue {
		if p.bid == nil && p.tries == 0 && p.due.After(now) {
			later++
		} else {
			due++
		}
	}
	return due, later
}

// flush writes the entries already due, in rounds bounded in all by
// CallTimeout; it returns at the first round that puts an entry back in
// the queue (a failure, a reply "early", or a withdrawal, whose skip
// comes due later).
func (r *recorder) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), r.s.opts.CallTimeout)
	defer cancel()
	for ctx.Err() == nil {
		skips, bids := r.due(nil, nil)
		if len(skips)+len(bids) == 0 {
			return
		}
		r.workAll(ctx, skips, bids)
		if r.requeued(skips, bids) {
			return // drain waits for its due time
		}
	}
}

// requeued says whether any entry of the round went back to the queue.
func (r *recorder) requeued(rounds ...[]*pending) bool {
	for _, ps := range rounds {
		for _, p := range ps {
			if p.index >= 0 {
				return true
			}
		}
	}
	return false
}

// due pops the entries due now into skips and bids, up to a round's
// size.
func (r *recorder) due(skips, bids []*pending) ([]*pending, []*pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for r.queue.Len() > 0 && len(skips) < recordBatch && len(bids) < withdrawBatch && !r.queue[0].due.After(now) {
		p := heap.Pop(&r.queue).(*pending)
		if p.bid != nil {
			bids = append(bids, p)
		} else {
			skips = append(skips, p)
		}
	}
	return skips, bids
}

func (r *recorder) run(ctx context.Context) {
	clk := r.s.opts.Clock
	var skips, bids []*pending
	// A round under way when Run ends completes (each call is bounded by
	// CallTimeout); stop then flushes what is due.
	wctx := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		r.logDrops()
		skips, bids = r.due(skips, bids)
		if len(skips)+len(bids) > 0 {
			r.workAll(wctx, skips, bids)
			clear(skips)
			clear(bids)
			skips, bids = skips[:0], bids[:0]
			continue
		}
		t := clk.NewTimer(r.wait())
		select {
		case <-ctx.Done():
			t.Stop()
		case <-r.kick:
			t.Stop()
		case <-t.C():
		}
	}
}

// logDrops logs the entries dropped since the last call, and the
// warnings suppressed in windows now over (warnLimit).
func (r *recorder) logDrops() {
	r.s.warns.flush(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped > 0 {
		r.s.log.Warn().Int("slots", r.dropped).Int("max_pending", r.max).Msg("skip records dropped: too many pending")
		r.dropped = 0
	}
	if r.tooLateN > 0 {
		r.s.log.Warn().Int("slots", r.tooLateN).Msg("skip records dropped: written too late to tell whether the slot ran")
		r.tooLateN = 0
	}
	if r.agedN > 0 {
		r.s.log.Warn().Int("slots", r.agedN).Msg("skip records dropped: older than the job's history keeps")
		r.agedN = 0
	}
}

// wait is how long until the next entry is due, at most maxSleep.
func (r *recorder) wait() time.Duration {
	next, ok := r.next()
	if !ok {
		return maxSleep
	}
	return min(max(next.Sub(r.now()), 0), maxSleep)
}

// workAll makes one attempt at each entry: the records in one round of
// pipelined calls, the withdrawals each on a goroutine of its own; it
// returns when all are done.
func (r *recorder) workAll(ctx context.Context, skips, bids []*pending) {
	var wg sync.WaitGroup
	for _, p := range bids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.withdraw(ctx, p)
		}()
	}
	if len(skips) > 0 {
		r.record(ctx, skips)
	}
	wg.Wait()
}

// markGone says whether the mark of p's slot, if a claim wrote one, may be
// gone (markLasts, on a clock at most MaxClockSkew behind Redis's): an
// absent mark proves nothing any more.
func (r *recorder) markGone(p *pending, now time.Time) bool {
	return now.After(r.markLasts(p.js, p.slot).Add(r.s.opts.MaxClockSkew))
}

// aged says whether p's slot is older than the job's history keeps
// records (History.MaxAge): a record written now would be trimmed at
// once, so p is dropped. Until then Redis decides whether the record can
// still be written (locker.Skip): a recorder that fell behind, or an
// outage longer than the mark's retention, still records the slots that
// the job's high-water or ring proves nobody decided.
func (r *recorder) aged(p *pending, now time.Time) bool {
	return now.After(p.slot.Add(p.js.job.History.OrDefault().MaxAge))
}

// withdraw makes one attempt at withdrawing p's bid, then queues its
// record (or the next attempt). A withdrawal is safe at any age: it ends
// the claim's running mark if the claim won and the mark is still there (a
// claim that landed late keeps it past markLasts), else it does nothing,
// and the record then goes to Redis, which writes it past the mark's
// window only if the bid never decided the slot (locker.Skip).
func (r *recorder) withdraw(ctx context.Context, p *pending) {
	s := r.s
	now := r.now()
	if r.aged(p, now) {
		r.count(&r.agedN)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	if err := p.bid.Withdraw(cctx); err != nil {
		r.retry(p, err, now)
		return
	}
	p.bid, p.tries = nil, 0
	p.due = r.closes(p.js, p.slot)
	r.requeue(p)
}

// record makes one attempt at writing the records of ps, at once, and
// requeues those to be retried.
func (r *recorder) record(ctx context.Context, ps []*pending) {
	defer r.forgetDecided()
	s := r.s
	now := r.now()
	live := ps[:0]
	for _, p := range ps {
		switch {
		case p.passed && !s.share.first(p.js, p.slot):
			continue // left to a replica ranked above this one (addPassed)
		case r.aged(p, now):
			r.count(&r.agedN)
			continue
		case r.markGone(p, now) && !p.slot.After(r.decided[p.js.job.Name]):
			r.count(&r.tooLateN) // no proof left for the slot (see Decided): Redis would say late
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	skips := make([]locker.Skip, len(live))
	for i, p := range live {
		skips[i] = r.skipOf(p)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	errs := s.locker.RecordSkips(cctx, skips)
	cancel()
	for i, p := range live {
		err := errs[i]
		var ne *locker.NotObtainedError
		switch {
		case err == nil:
			s.skipped(p.js, p.slot, p.reason)
		case errors.Is(err, locker.ErrEarly) && errors.As(err, &ne):
			p.tries = 0
			p.due = now.Add(ne.Wait + 10*time.Millisecond)
			r.requeue(p)
		case errors.Is(err, locker.ErrLate):
			r.count(&r.tooLateN) // past the mark's window, with no proof left: logged
			if errors.As(err, &ne) && ne.Decided.After(r.decided[p.js.job.Name]) {
				r.decided[p.js.job.Name] = ne.Decided
			}
		case errors.Is(err, locker.ErrSlotClaimed), errors.Is(err, locker.ErrUnborn):
			// Another replica ran or recorded it, or the slot came before
			// the job was first seen.
		default:
			r.retry(p, err, now)
		}
	}
}

// forgetDecided clears decided once the queue is empty: what it knew
// served the skips queued so far.
func (r *recorder) forgetDecided() {
	r.mu.Lock()
	empty := r.queue.Len() == 0
	r.mu.Unlock()
	if empty {
		clear(r.decided)
	}
}

// retry requeues p after a failed attempt. A call that waited in this
// replica's own queue until its round's bound never reached Redis: Redis
// did not fail, this replica is behind, so it goes again in the next round
// with no backoff (a backoff there would push an overloaded replica's
// records past the point where they can be written). Any other error backs
// off as a claim's does.
func (r *recorder) retry(p *pending, err error, now time.Time) {
	if errors.Is(err, locker.ErrNotSent) {
		p.due = now
	} else {
		p.tries++
		p.due = now.Add(reconnectDelay(p.tries))
		r.s.rights.seen(err)
	}
	r.requeue(p)
}

// count adds one to the drop counter c (tooLateN: the record can no
// longer be written; agedN: older than the job's history keeps), logged
// with the next round.
func (r *recorder) count(c *int) {
	r.mu.Lock()
	*c++
	r.mu.Unlock()
}

func (r *recorder) requeue(p *pending) {
	r.mu.Lock()
	heap.Push(&r.queue, p)
	r.mu.Unlock()
}

// pendingHeap orders pending writes by due time.
type pendingHeap []*pending

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pendingHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pendingHeap) Push(x any) {
	p := x.(*pending)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	p.index = -1 // out of the queue
	*h = old[:len(old)-1]
	return p
}
