package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
)

// Defaults of [Options].
const (
	DefaultPrefix        = "redcron"
	DefaultMaxClockSkew  = 2 * time.Second
	DefaultShutdownGrace = 30 * time.Second
	DefaultHistoryLen    = 100
	DefaultHistoryTTL    = 7 * 24 * time.Hour
	DefaultCallTimeout   = 5 * time.Second
	// MarkMargin is added to every slot mark's retention, for Redis and
	// network latency and timer lateness (see [Scheduler.MarkRetention]).
	MarkMargin = 5 * time.Second
	// OnTime is the least catch-up window: a slot less than OnTime old is
	// fired as on time even when the job's catchup_window is shorter (0).
	OnTime = time.Second
)

// Locker is what the scheduler needs from locker.Locker: one claim in one
// round trip.
type Locker interface {
	Obtain(ctx context.Context, c locker.Claim) (*locker.Lease, error)
}

// Options configure a Scheduler. The zero value works: every field has a
// default.
type Options struct {
	// Replica names this replica in logs, records and jobs.Run; default
	// "<hostname>-<pid>".
	Replica string
	// Clock is the single source of time; default RealClock(). Use
	// OffsetClock for REDCRON_CLOCK_OFFSET.
	Clock Clock
	// Logger receives one line per run and per skipped slot, with
	// structured fields; default: disabled.
	Logger zerolog.Logger
	// Prefix starts every Redis key: "<prefix>:{<job>}:..."; default "redcron".
	Prefix string
	// MaxClockSkew is the largest clock difference between replicas that
	// one-run-per-slot must survive; it sizes the slot marks. Default 2s.
	MaxClockSkew time.Duration
	// ShutdownGrace is how long Run waits, after its context ends, for
	// running jobs before cancelling them with ErrShutdown. Default 30s.
	ShutdownGrace time.Duration
	// Registerer, when not nil, gets the scheduler's Prometheus metrics
	// (redcron_runs_total, redcron_skipped_slots_total,
	// redcron_claim_errors_total, redcron_fire_lag_seconds); schedulers
	// sharing a registry share the collectors.
	Registerer prometheus.Registerer
	// HistoryLen and HistoryTTL bound each job's run history list
	// ("<prefix>:{<job>}:history"); defaults 100 entries and 7 days.
	HistoryLen int
	HistoryTTL time.Duration
	// CallTimeout bounds the Finish call that records a run; default 5s.
	CallTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Replica == "" {
		host, _ := os.Hostname()
		o.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.Clock == nil {
		o.Clock = RealClock()
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.HistoryLen <= 0 {
		o.HistoryLen = DefaultHistoryLen
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = DefaultHistoryTTL
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	return o
}

// Scheduler runs jobs on their slots, claiming each (job, slot) in Redis
// first so that, across replicas, each slot runs at most once. Create it
// with New and start it with Run.
type Scheduler struct {
	opts    Options
	locker  Locker
	jobs    []*jobState
	log     zerolog.Logger
	metrics *metrics

	started atomic.Bool
	// failures counts consecutive claim I/O errors across jobs; it drives
	// the shared reconnect backoff and is reset by any successful claim.
	failures atomic.Int64
	wg       sync.WaitGroup // every firing
	workers  *workers       // the goroutines firings run on
	gate     *gate          // the latest slot gate (see gateAt); loop only
	// gateCancel is the latest gate's attempt cancel; earlier ones end at
	// their deadlines. Loop only.
	gateCancel context.CancelFunc
	runsCtx    context.Context

	// trigMu guards accepting: Trigger adds to wg only while Run accepts,
	// so that no Add can follow Run's Wait.
	trigMu    sync.Mutex
	accepting bool
}

// jobState is one job's schedule and keys; next and last are owned by the
// loop goroutine.
type jobState struct {
	job   *jobs.Job
	sched Schedule
	keys  keys
	run   RunFunc // without Retry: attempts are counted per firing

	next  time.Time // next slot to consider
	last  time.Time // latest slot handled (fired or skipped); zero at start
	index int       // in the heap
	rank  int       // order among jobs due at the same instant (see New)
	memo  *nextMemo // shared by the jobs with the same schedule; nil: none
}

// keys are a job's Redis keys, all sharing the {job} hash tag.
type keys struct {
	fence, run, paused, history, prefix string
}

func jobKeys(prefix, job string) keys {
	p := prefix + ":{" + job + "}:"
	return keys{fence: p + "fence", run: p + "run", paused: p + "paused", history: p + "history", prefix: p}
}

func (k keys) slot(t time.Time) string  { return k.prefix + "slot:" + strconv.FormatInt(t.Unix(), 10) }
func (k keys) lease(t time.Time) string { return k.prefix + "lease:" + strconv.FormatInt(t.Unix(), 10) }

// New checks the jobs and returns a Scheduler for them. Jobs with Enabled
// false are kept but never run. It fails (wrapping ErrInvalidJob) on a nil
// job, an empty or duplicated name, or a nil schedule, and on a nil Locker.
func New(js []*jobs.Job, l Locker, opts Options) (*Scheduler, error) {
	if l == nil {
		return nil, fmt.Errorf("%w: nil locker", ErrInvalidJob)
	}
	opts = opts.withDefaults()
	s := &Scheduler{
		opts:    opts,
		locker:  l,
		log:     opts.Logger.With().Str("replica", opts.Replica).Logger(),
		metrics: newMetrics(opts.Registerer),
	}
	seen := map[string]bool{}
	var errs []error
	for i, j := range js {
		switch {
		case j == nil:
			errs = append(errs, fmt.Errorf("%w: job %d is nil", ErrInvalidJob, i))
			continue
		case j.Name == "":
			errs = append(errs, fmt.Errorf("%w: job %d has no name", ErrInvalidJob, i))
			continue
		case seen[j.Name]:
			errs = append(errs, fmt.Errorf("%w: job %q declared twice", ErrInvalidJob, j.Name))
			continue
		case j.Schedule == nil:
			errs = append(errs, fmt.Errorf("%w: job %q has no schedule", ErrInvalidJob, j.Name))
			continue
		}
		seen[j.Name] = true
		s.jobs = append(s.jobs, &jobState{
			job:   j,
			sched: NewSchedule(j.Schedule, j.Location),
			keys:  jobKeys(opts.Prefix, j.Name),
			run:   Chain(Recover())(j.Run),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Jobs due at the same instant are claimed in declaration order, rotated
	// by an amount derived from the replica name: replicas racing for the
	// same slots then start at different jobs, so each job's first claim
	// (the one that wins) reaches Redis sooner than if every replica sent
	// the same job first.
	memos := map[Schedule]*nextMemo{}
	for _, js := range s.jobs {
		if js.sched.kind == kindOther {
			continue // its cron.Schedule may not be comparable
		}
		if memos[js.sched] == nil {
			memos[js.sched] = &nextMemo{}
		}
		js.memo = memos[js.sched]
	}
	rot := int(Jitter(opts.Replica, time.Unix(0, 0), time.Duration(len(s.jobs))))
	for i, js := range s.jobs {
		js.rank = (i + rot) % len(s.jobs)
	}
	return s, nil
}

// MarkRetention is how long the record of a (job, slot) stays in Redis after
// a claim or finish: 2 x MaxClockSkew + max(catchup_window, OnTime) + jitter
// + MarkMargin. A replica may claim a slot as early as slot - MaxClockSkew
// (clock ahead) and as late as slot + MaxClockSkew (clock behind) + jitter +
// the catch-up window, after which it never claims it; the mark, set at the
// first claim and rewritten at finish, must still be there then. Longer would
// only waste memory (promise 7).
func (s *Scheduler) MarkRetention(j *jobs.Job) time.Duration {
	return 2*s.opts.MaxClockSkew + max(j.CatchupWindow, OnTime) + max(j.Jitter, 0) + MarkMargin
}

// Replica is this scheduler's replica name.
func (s *Scheduler) Replica() string { return s.opts.Replica }

// Run fires jobs until ctx ends, then shuts down gracefully: it stops
// claiming, waits up to ShutdownGrace for running jobs, cancels those still
// running with cause ErrShutdown, records their outcomes, finishes their
// leases, and returns nil. Run may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	runsCtx, cancelRuns := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRuns(nil)
	s.runsCtx = runsCtx
	s.workers = newWorkers()
	defer s.workers.stop() // after every firing has returned (below)
	defer func() {
		if s.gateCancel != nil {
			s.gateCancel() // every firing has returned: no claim is in flight
		}
	}()

	s.setAccepting(true) // manual triggers, from now until the loop ends
	s.loop(ctx)
	s.setAccepting(false)

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	default:
	}
	s.log.Info().Dur("grace", s.opts.ShutdownGrace).Msg("shutdown: waiting for running jobs")
	t := s.opts.Clock.NewTimer(s.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C():
		s.log.Warn().Msg("shutdown: grace over, cancelling running jobs")
		cancelRuns(ErrShutdown)
		<-done
	}
	return nil
}
