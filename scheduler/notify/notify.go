// Package notify posts job events (a failed run, a recovery, a skipped slot)
// to the webhooks of the jobs' `notify:` blocks.
//
// The replica that records a final state is the one that notifies, so each
// event is sent once for the whole cluster. Sending never blocks the
// scheduler: Notify only enqueues, into a bounded queue, and drops (and
// counts) an event when the queue is full. One worker, Run, posts the
// events one by one, retrying network errors, 5xx and 429 answers with a
// doubling backoff.
//
// Secrets: the record's error and output are redacted by the caller, and
// the body again with Options.Secrets before it is posted. The webhook URL and the header values may be secrets
// (a Slack webhook's path is its credential): logs name the webhook's host
// only, and error texts and response snippets are scrubbed of the URL and
// of every header value before they are logged.
package notify

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// Event kinds (Event.Kind), the values of a notify: block's `on` list.
const (
	KindFailure  = jobs.NotifyFailure  // a run ended with an outcome other than ok
	KindRecovery = jobs.NotifyRecovery // an ok run after a failed final record
	KindSkipped  = jobs.NotifySkipped  // a slot recorded as skipped
)

// Defaults of Options and Target.
const (
	DefaultQueueLen    = 1000
	DefaultMaxAttempts = 5
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	DefaultTimeout     = jobs.DefaultNotifyTimeout
	// dropWarnEvery is the least time between two "dropped" warnings.
	dropWarnEvery = 10 * time.Second
)

// Event is one notification: a final record and what it means.
type Event struct {
	// Record is the slot's final record, its error and output already
	// redacted by the caller. Its output is cut to its last MaxOutput
	// bytes when queued.
	Record store.Record
	// Kind is KindFailure, KindRecovery or KindSkipped (see KindOf).
	Kind string
}

// Target is where an event goes: a job's notify: block (see TargetOf).
type Target struct {
	Webhook string            // absolute http:// or https:// URL; a secret: never logged
	Headers map[string]string // added to the POST; values are secrets: never logged
	Timeout time.Duration     // bound on each POST; <= 0: DefaultTimeout
}

// TargetOf is the target of a job's notify: block; ok is false when the
// block sends nothing for kind (nil, `on` without kind, no webhook).
func TargetOf(n *jobs.Notify, kind string) (t Target, ok bool) {
	if !n.Wants(kind) {
		return Target{}, false
	}
	return Target{Webhook: n.Webhook, Headers: n.Headers, Timeout: n.Timeout}, true
}

// Options configure a Notifier. The zero value is usable.
type Options struct {
	QueueLen int // events waiting to be sent; <= 0: DefaultQueueLen
	// Client sends the POSTs; nil: a client of its own that follows no
	// redirects (a redirect would carry the headers to another URL), whose
	// idle connections Run closes when it returns. Each request is bounded
	// by its target's Timeout and by Run's context, whatever the client.
	Client *http.Client
	Logger zerolog.Logger
	// MaxAttempts is the number of POSTs of one event, the first included;
	// <= 0: DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the delay before the second attempt, doubled before each
	// next one up to MaxBackoff; <= 0: DefaultBackoff and DefaultMaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Registerer, when set, gets redcron_notifications_total{result} with
	// result sent, failed or dropped.
	Registerer prometheus.Registerer
	// Secrets, when set, are redacted from the record's error and output
	// when an event is queued, and from the whole body before it is
	// posted, whatever the caller redacted already.
	Secrets *jobs.Secrets
}

// Stats counts events by their end, since New.
type Stats struct {
	Sent    uint64 // posted and answered 2xx
	Failed  uint64 // given up: a 4xx other than 429, a 3xx, or every attempt failed
	Dropped uint64 // never sent: the queue was full, or Run ended first
}

// Notifier queues events and sends them from Run. Its methods are safe for
// concurrent use.
type Notifier struct {
	opts    Options
	ownHTTP bool // opts.Client is ours: Run closes its idle connections
	queue   chan item

	running atomic.Bool
	stopped atomic.Bool // Run has ended: Notify drops

	sent, failed, dropped atomic.Uint64
	metric                *prometheus.CounterVec

	warnMu      sync.Mutex
	lastWarn    time.Time // when "dropped" was last logged
	droppedSeen uint64    // the dropped count then
}

type item struct {
	target Target
	ev     Event
}

// New returns a Notifier; nothing is sent until Run is called.
func New(opts Options) *Notifier {
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultQueueLen
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxBackoff < opts.Backoff {
		opts.MaxBackoff = opts.Backoff
	}
	n := &Notifier{opts: opts, queue: make(chan item, opts.QueueLen)}
	if n.opts.Client == nil {
		n.ownHTTP = true
		n.opts.Client = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	n.metric = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "redcron_notifications_total",
		Help: "Notifications (failure, recovery, skipped) by how they ended: sent, failed (given up) or dropped (queue full or shutting down).",
	}, []string{"result"})
	if reg := opts.Registerer; reg != nil {
		if err := reg.Register(n.metric); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					n.metric = existing
				}
			}
		}
	}
	for _, r := range []string{"sent", "failed", "dropped"} {
		n.metric.WithLabelValues(r)
	}
	return n
}

// Notify queues ev for target and returns at once: true when queued; false
// when the queue is full or Run has ended (the event is dropped, counted,
// and a warning with the count is logged at most every 10s), or when the
// target has no webhook (nothing to do, nothing counted).
func (n *Notifier) Notify(target Target, ev Event) bool {
	if target.Webhook == "" {
		return false
	}
	if !n.stopped.Load() {
		// Redacted before the text line escapes it for Slack (&lt;...).
		ev.Record.Error = n.opts.Secrets.Redact(ev.Record.Error)
		ev.Record.Output = n.opts.Secrets.RedactTail(ev.Record.Output)
		ev.Record = trimRecord(ev.Record)
		select {
		case n.queue <- item{target: target, ev: ev}:
			if !n.stopped.Load() {
				return true
			}
			// Run ended meanwhile, maybe after its last look at the
			// queue: take an event back out so none is left uncounted
			// (whoever takes an event out counts it).
			select {
			case <-n.queue:
				n.drop(1)
			default:
			}
			return false
		default:
		}
	}
	n.drop(1)
	n.warnDropped()
	return false
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

func (n *Notifier) drop(k int) {
	n.dropped.Add(uint64(k))
	n.metric.WithLabelValues("dropped").Add(float64(k))
}

// warnDropped logs the drops since the last warning, at most every
// dropWarnEvery; the caller that wins the slot logs, the others return.
func (n *Notifier) warnDropped() {
	now := time.Now()
	n.warnMu.Lock()
	if !n.lastWarn.IsZero() && now.Sub(n.lastWarn) < dropWarnEvery {
		n.warnMu.Unlock()
		return
	}
	total := n.dropped.Load()
	since := total - n.droppedSeen
	n.lastWarn, n.droppedSeen = now, total
	n.warnMu.Unlock()
	n.opts.Logger.Warn().Uint64("dropped", since).Uint64("dropped_total", total).Int("queue", n.opts.QueueLen).
		Msg("notifications dropped: the queue is full (the webhook is slow or down) or the notifier has stopped")
}

// Run sends the queued events, one at a time, until ctx ends; then it
// returns, dropping (and counting, in one log line) the events still
// queued. An event being sent when ctx ends is given up as failed. Call
// Run once; the caller owns its goroutine.
func (n *Notifier) Run(ctx context.Context) {
	if !n.running.CompareAndSwap(false, true) {
		n.opts.Logger.Error().Msg("notify: Run called twice; the second call returns at once")
		return
	}
	left := 0 // events taken from the queue but not sent
	defer func() {
		n.stopped.Store(true)
		for {
			select {
			case <-n.queue:
				left++
				continue
			default:
			}
			break
		}
		if left > 0 {
			n.drop(left)
		}
		n.opts.Logger.Info().Int("dropped", left).Msg("notifier stopped")
		if n.ownHTTP {
			n.opts.Client.CloseIdleConnections()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.queue:
			if ctx.Err() != nil {
				left++
				return
			}
			n.send(ctx, it)
		}
	}
}
