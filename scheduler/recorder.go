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
// bounded in length (the oldest entries beyond maxPending are dropped,
// counted and logged) and in age (an entry is dropped once its record can
// no longer be written).
type recorder struct {
	s    *Scheduler
	kick chan struct{}

	mu      sync.Mutex
	queue   pendingHeap
	dropped int // since the last log line
}

// pending is one deferred write.
type pending struct {
	js     *jobState
	slot   time.Time
	reason string
	bid    *locker.Bid // not nil: withdraw it first (it may have won)
	skip   locker.Skip // the record, written once the slot is beyond any claim
	due    time.Time   // on the scheduler's clock
	giveUp time.Time   // on the scheduler's clock: drop after this
	tries  int
	index  int
}

// maxPending bounds the recorder's queue.
const maxPending = 10000

// maxLateRecords bounds how many of the slots passed over at once (a
// replica waking late) are queued for a skip record; the rest are only
// counted in the log line.
const maxLateRecords = 100

func newRecorder(s *Scheduler) *recorder {
	return &recorder{s: s, kick: make(chan struct{}, 1)}
}

// defer queues the skip record of (job, slot) for reason, after withdrawing
// bid if not nil. Called by firings and the loop.
func (r *recorder) add(js *jobState, slot time.Time, reason string, bid *locker.Bid) {
	s := r.s
	j := js.job
	jitter := Jitter(j.Name, slot, j.Jitter)
	// No replica claims the slot after its window (on a clock at most
	// MaxClockSkew behind); its run's mark, if any, lasts until at least
	// slot + retention.
	closes := slot.Add(jitter + max(j.CatchupWindow, OnTime) + s.opts.MaxClockSkew)
	retention := s.MarkRetention(j)
	p := &pending{
		js: js, slot: slot, reason: reason, bid: bid,
		skip: locker.Skip{
			MarkKey: js.keys.Mark(slot), MetaKey: js.keys.Meta(), Slot: slot, FirstSeen: js.since,
			Record: store.Skip(j.Name, slot, reason), Retention: retention,
			NotBefore: closes, NotAfter: slot.Add(retention),
			HistoryKey: js.keys.History(), HistoryLen: js.job.History.OrDefault().Keep, HistoryTTL: js.job.History.OrDefault().MaxAge,
		},
		due:    s.opts.Clock.Now(),
		giveUp: slot.Add(retention + s.opts.MaxClockSkew),
	}
	if bid == nil {
		p.due = closes
	}
	r.mu.Lock()
	heap.Push(&r.queue, p)
	for r.queue.Len() > maxPending {
		heap.Remove(&r.queue, r.queue.oldest())
		r.dropped++
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// start runs the recorder until ctx ends or the returned func, which stops
// it, waits for it and logs what was left undone.
func (r *recorder) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	return func() {
		cancel()
		<-done
		r.mu.Lock()
		left := r.queue.Len()
		r.mu.Unlock()
		if left > 0 {
			r.s.log.Warn().Int("slots", left).Msg("shutdown: skip records not yet due are not written")
		}
	}
}

func (r *recorder) run(ctx context.Context) {
	clk := r.s.opts.Clock
	for {
		r.mu.Lock()
		if r.dropped > 0 {
			r.s.log.Warn().Int("slots", r.dropped).Int("max_pending", maxPending).Msg("skip records dropped: too many pending")
			r.dropped = 0
		}
		var p *pending
		wait := maxSleep
		if r.queue.Len() > 0 {
			if d := r.queue[0].due.Sub(clk.Now()); d <= 0 {
				p = heap.Pop(&r.queue).(*pending)
			} else {
				wait = min(d, maxSleep)
			}
		}
		r.mu.Unlock()
		if p != nil {
			r.work(ctx, p)
			continue
		}
		t := clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.kick:
			t.Stop()
		case <-t.C():
		}
	}
}

// work makes one attempt at p and requeues it when it must be retried.
func (r *recorder) work(ctx context.Context, p *pending) {
	s := r.s
	clk := s.opts.Clock
	now := clk.Now()
	if now.After(p.giveUp) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	p.tries++
	retry := reconnectDelay(p.tries)
	if p.bid != nil {
		if err := p.bid.Withdraw(cctx); err != nil {
			p.due = now.Add(retry)
			r.requeue(p)
			return
		}
		p.bid, p.tries = nil, 0
		p.due = p.skip.NotBefore
		r.requeue(p)
		return
	}
	err := s.locker.RecordSkip(cctx, p.skip)
	var ne *locker.NotObtainedError
	switch {
	case err == nil:
		s.skipped(p.js, p.slot, p.reason)
	case errors.Is(err, locker.ErrEarly) && errors.As(err, &ne):
		p.tries = 0
		p.due = now.Add(ne.Wait + 10*time.Millisecond)
		r.requeue(p)
	case errors.Is(err, locker.ErrSlotClaimed), errors.Is(err, locker.ErrLate), errors.Is(err, locker.ErrUnborn):
		// Another replica ran or recorded it, it is too late to tell, or
		// the slot came before the job was first seen.
	default:
		p.due = now.Add(retry)
		r.requeue(p)
	}
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
	*h = old[:len(old)-1]
	return p
}

// oldest is the index of the entry with the earliest slot.
func (h pendingHeap) oldest() int {
	o := 0
	for i, p := range h {
		if p.slot.Before(h[o].slot) {
			o = i
		}
	}
	return o
}
