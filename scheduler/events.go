package scheduler

import (
	"context"
	"time"

	"github.com/redcron/redcron/scheduler/notify"
	"github.com/redcron/redcron/scheduler/store"
)

// events turns the final records this replica writes into notifications
// (a job's notify: block): each event of the cluster is seen by exactly
// one replica, the one that recorded it, so each is sent once. recorded
// never blocks: a bounded queue feeds one goroutine, which decides the kind
// (a recovery needs the job's previous run, read from Redis) and hands the
// event to the notifier's own queue and worker. Both goroutines are owned
// by Run.
type events struct {
	s        *Scheduler
	queue    chan recordedEvent
	notifier *notify.Notifier
}

type recordedEvent struct {
	js  *jobState
	rec store.Record
}

// eventQueueLen bounds the records waiting for their kind.
const eventQueueLen = 1000

func newEvents(s *Scheduler) *events {
	o := s.opts.Notify
	o.Logger = s.log.With().Str("component", "notify").Logger()
	o.Registerer = s.opts.Registerer
	if o.Secrets == nil {
		o.Secrets = s.opts.Secrets
	}
	return &events{s: s, queue: make(chan recordedEvent, eventQueueLen), notifier: notify.New(o)}
}

// recorded is called once for every final record this replica wrote (a
// run's outcome, or a skip it recorded). It must not block.
func (s *Scheduler) recorded(js *jobState, rec store.Record) {
	if js.job.Notify == nil || s.store == nil {
		return
	}
	select {
	case s.events.queue <- recordedEvent{js, rec}:
	default:
		if s.warns.allow(warnNotifyDropped) {
			s.log.Warn().Str("job", js.job.Name).Time("slot", rec.Slot).Msg(warnMsg[warnNotifyDropped])
		}
	}
}

// start runs the feed and the notifier until the returned func, which
// stops both and waits for them.
func (e *events) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		e.notifier.Run(ctx)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		e.feed(ctx)
	}()
	return func() {
		cancel()
		<-done
		<-done
	}
}

func (e *events) feed(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-e.queue:
			e.handle(ctx, ev)
		}
	}
}

// handle decides an event's kind and sends it if the job wants it.
func (e *events) handle(ctx context.Context, ev recordedEvent) {
	n := ev.js.job.Notify
	prev := ""
	if ev.rec.Outcome == store.OutcomeOK && n.Wants(notify.KindRecovery) {
		prev = e.previousRun(ctx, ev.js.job.Name, ev.rec)
	}
	kind := notify.KindOf(ev.rec, prev)
	if kind == "" {
		return
	}
	if target, ok := notify.TargetOf(n, kind); ok {
		e.notifier.Notify(target, notify.Event{Record: ev.rec, Kind: kind})
	}
}

// previousRun is the outcome of the job's last run before rec (skips
// aside), "" when unknown.
func (e *events) previousRun(ctx context.Context, job string, rec store.Record) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	recs, err := e.s.store.History(ctx, job, store.Page{Limit: 20, Before: rec.Slot})
	if err != nil {
		return ""
	}
	for _, r := range recs {
		if r.Outcome != store.OutcomeSkipped {
			return r.Outcome
		}
	}
	return ""
}

// skipRecord is the record of a slot skipped for reason.
func skipRecord(js *jobState, slot time.Time, reason string) store.Record {
	return store.Record{Job: js.job.Name, Slot: slot, Outcome: store.OutcomeSkipped, Reason: reason}
}
