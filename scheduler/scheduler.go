package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/redisconn"
	"github.com/redcron/redcron/scheduler/schedule"
	"github.com/redcron/redcron/scheduler/store"
)

// Locker is what the scheduler needs from locker.Locker: claims that are
// retried as themselves (Bid), the server's clock, and skip records for
// slots nobody claimed.
type Locker interface {
	Bid(c locker.Claim) (*locker.Bid, error)
	ServerClock(ctx context.Context, now func() time.Time) (locker.ServerClock, error)
	RecordSkips(ctx context.Context, ss []locker.Skip) []error
	Stuck(d time.Duration) bool
	Backlog() time.Duration
	Nodes() int
}

// Scheduler runs jobs on their slots, claiming each (job, slot) in Redis
// first so that, across replicas, each slot runs at most once. Create it
// with FromConfig (a loaded jobs.yaml) or New, and start it with Run.
type Scheduler struct {
	opts    Options
	locker  Locker
	jobs    []*jobState
	log     zerolog.Logger
	warns   *warnLimit // bounds the warnings about single firings
	metrics *metrics

	started atomic.Bool
	// preflighted is set by the first Preflight (Run's or its caller's).
	preflighted atomic.Bool
	// reconnect is the claims' shared backoff while Redis fails.
	reconnect reconnect
	wg        sync.WaitGroup     // every firing
	workers   *workers           // the goroutines firings run on
	gate      *gate              // the latest slot gate (see gateAt); loop only
	standby   *standby           // the latest instant's standby (see hold); loop only
	jittered  map[int64]*standby // standbys of firings with jitter by bucket end (see holdJittered); loop only
	// startsWait bounds how long a run's record waits for its instant's
	// other runs to start (startsWaitMax; see starts).
	startsWait time.Duration
	// gateCancel is the latest gate's attempt cancel; earlier ones end at
	// their deadlines. Loop only.
	gateCancel context.CancelFunc
	runsCtx    context.Context
	// clock is this replica's measured offset to Redis; recorder records
	// the skips of slots nobody claimed once no replica may claim them.
	clock    *clockWatch
	recorder *recorder
	// rights names what the Redis user lacks when Redis refuses a script's
	// command while the replica runs (with a connection of its own only).
	rights *rightsWatch
	// store reads and writes pause state and history (nil when the locker
	// is not a *locker.Locker); conn is the Redis connection, if the
	// scheduler was built by FromConfig (owned: dialed by it).
	store   *store.Store
	conn    *redisconn.Conn
	ownConn bool

	// jobsMu guards the jobs slice (replaced by Reload); the loop owns
	// each jobState's next and last. reloads hands a reload to the loop,
	// which closes loopDone when it returns.
	jobsMu   sync.RWMutex
	reloads  chan reload
	loopDone chan struct{}
	registry *registry
	share    *share
	ahead    *claimLead      // how long before their slot claims go out
	clk      *correctedClock // opts.Clock
	events   *events

	// trigMu guards accepting: Trigger adds to wg only while Run accepts,
	// so that no Add can follow Run's Wait.
	trigMu    sync.Mutex
	accepting bool
}

// jobState is one job's schedule and keys; next and last are owned by the
// loop goroutine.
type jobState struct {
	job *jobs.Job
	// fn is the job's function wrapped in Options.Wrappers, once per job
	// (a wrapper may keep state per job); nil without wrappers. Timeout,
	// Retry and Recover are added per run.
	fn    RunFunc
	since time.Time // when this replica loaded the job: its first sight, unless the cluster saw it earlier
	// fingerprint is job.Fingerprint(): a reload keeps this state when the
	// definition is the same.
	fingerprint string
	metrics     *jobMetrics // the job's series

	next time.Time // next slot to consider
	last time.Time // latest slot handled (fired or skipped); zero at start
	rank int       // order among jobs due at the same instant (see New)
	memo *nextMemo // shared by the jobs with the same schedule; nil: none
}

// keysOf is js's Redis keys, built for each claim or skip rather than kept
// per job: a replica holds 100,000 jobs, and a firing's claim allocates
// far more than this one string.
func (s *Scheduler) keysOf(js *jobState) store.Keys {
	return store.JobKeys(s.opts.Prefix, js.job.Name)
}

// New checks the jobs and returns a Scheduler for them over l, with opts as
// given: prefer FromConfig, which takes the cluster settings (prefix, clock
// skew, grace) from the file every replica shares. Jobs with Enabled false
// are kept but never run. It fails (wrapping ErrInvalidJob) on a nil job, an
// empty or duplicated name, or a zero schedule, and on a nil Locker.
func New(js []*jobs.Job, l Locker, opts Options) (*Scheduler, error) {
	if l == nil {
		return nil, fmt.Errorf("%w: nil locker", ErrInvalidJob)
	}
	opts = opts.withDefaults()
	clk := &correctedClock{base: opts.Clock}
	opts.Clock = clk
	s := &Scheduler{
		clk:      clk,
		opts:     opts,
		locker:   l,
		log:      opts.Logger.With().Str("replica", opts.Replica).Logger(),
		metrics:  newMetrics(opts.Registerer),
		reloads:  make(chan reload),
		loopDone: make(chan struct{}),

		startsWait: startsWaitMax,
	}
	if lk, ok := l.(*locker.Locker); ok {
		s.store = store.New(lk, opts.Prefix)
	}
	s.warns = newWarnLimit(opts.Clock, s.log)
	s.clock = newClockWatch(s)
	s.recorder = newRecorder(s)
	s.rights = newRightsWatch(s)
	s.registry = newRegistry(s)
	s.share = newShare(s)
	s.ahead = newClaimLead(s.opts.Clock)
	s.events = newEvents(s)
	states, layout, err := s.states(js, nil)
	if err != nil {
		return nil, err
	}
	layout()
	s.jobs = states
	return s, nil
}

// states checks js and builds their runtime state, reusing old's state for
// a job whose definition is unchanged (same name and fingerprint). layout
// sets every state's rank and shared Next memo; the owner of the states'
// loop fields calls it (the loop, for states it may be using). It fails
// (wrapping ErrInvalidJob) on a nil job, an empty or duplicated name, or a
// zero schedule.
func (s *Scheduler) states(js []*jobs.Job, old []*jobState) (out []*jobState, layout func(), err error) {
	opts := s.opts
	prev := make(map[string]*jobState, len(old))
	for _, o := range old {
		prev[o.job.Name] = o
	}
	now := opts.Clock.Now()
	seen := make(map[string]bool, len(js))
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
		case j.Schedule == (schedule.Schedule{}):
			errs = append(errs, fmt.Errorf("%w: job %q has no schedule", ErrInvalidJob, j.Name))
			continue
		}
		seen[j.Name] = true
		fp := j.Fingerprint()
		if o := prev[j.Name]; o != nil && o.fingerprint == fp {
			out = append(out, o)
			continue
		}
		since := now
		if o := prev[j.Name]; o != nil {
			since = o.since // this replica saw the job before
		}
		var fn RunFunc
		if len(opts.Wrappers) > 0 {
			fn = Chain(opts.Wrappers...)(j.Run)
		}
		out = append(out, &jobState{
			job:         j,
			fn:          fn,
			since:       since,
			fingerprint: fp,
			metrics:     s.metrics.forJob(j.Name),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	// Jobs due at the same instant are claimed in declaration order, rotated
	// by an amount derived from the replica name: replicas racing for the
	// same slots then start at different jobs, so each job's first claim
	// (the one that wins) reaches Redis sooner than if every replica sent
	// the same job first. Jobs with the same schedule share their Next.
	layout = func() {
		memos := map[schedule.Schedule]*nextMemo{}
		rot := int(Jitter(opts.Replica, time.Unix(0, 0), time.Duration(max(len(out), 1))))
		for i, js := range out {
			sched := js.job.Schedule
			if memos[sched] == nil {
				memos[sched] = &nextMemo{}
			}
			js.memo = memos[sched]
			js.rank = (i + rot) % len(out)
		}
	}
	return out, layout, nil
}

// MarkRetention is how long the record of a (job, slot) stays in its mark
// after a claim, renewal or finish: MarkRetentionOf this replica's
// MaxClockSkew and the job's catchup_window and jitter. A slot is claimed
// from its instant (plus jitter) until its claim window ends, up to
// MaxClockSkew later on a replica whose clock is behind; the mark then
// still holds the slot's record, so that a skip recorded for a slot nobody
// claimed is never written beside a run's record (see recorder). The slot
// can never be claimed twice whatever this retention (the job's high-water
// slot guards it); it only bounds the ledger's memory (promise 7).
func (s *Scheduler) MarkRetention(j *jobs.Job) time.Duration {
	return MarkRetentionOf(s.opts.MaxClockSkew, j.CatchupWindow, j.Jitter)
}

// MarkRetentionOf is a mark's retention for a max clock skew and a job's
// catch-up window and jitter: 2 x maxSkew + max(catchup, OnTime) +
// max(jitter, 0) + MarkMarginOf(catchup).
func MarkRetentionOf(maxSkew, catchup, jitter time.Duration) time.Duration {
	return 2*maxSkew + max(catchup, OnTime) + max(jitter, 0) + MarkMarginOf(catchup)
}

// MarkMarginOf is the margin in the mark retention of a job whose catch-up
// window is catchup: max(MarkMargin, catchup/4), 15s for the default 1m. A
// slot's skip is written only from the end of its claim window to the end
// of its mark (see recorder), a window of MaxClockSkew + this margin. A
// replica that fell behind under overload by part of its catch-up window,
// within which it still runs slots, so still records the skips of the slots
// that it could not claim; a fixed 5s lost such records (bench/README.md).
func MarkMarginOf(catchup time.Duration) time.Duration {
	return max(MarkMargin, catchup/4)
}

// Replica is this scheduler's replica name.
func (s *Scheduler) Replica() string { return s.opts.Replica }

// Preflight runs the checks Run makes before anything starts, once: with
// the connection FromConfig dialed, it returns an error wrapping
// store.ErrACL when the Redis ACL user may not run what the scripts call,
// and warns (returning nil) when Redis cannot be reached or a setting
// weakens the guarantees. Run calls it unless it was called; a caller that
// reports a start (a log line, a served port) calls it first.
func (s *Scheduler) Preflight(ctx context.Context) error {
	if !s.preflighted.CompareAndSwap(false, true) || !s.ownConn {
		return nil
	}
	// An ACL user that may not run what the scripts call fails every
	// claim: refuse to start, naming what it lacks. A Redis that cannot
	// be reached now may be later: warn and go on.
	if err := s.conn.CheckRights(ctx, s.opts.Prefix); errors.Is(err, store.ErrACL) {
		return fmt.Errorf("scheduler: %w", err)
	} else if err != nil {
		s.log.Warn().Err(err).Msg("cannot check at start that the Redis user may run what the scripts call")
	}
	// The settings the guarantees need: warn loudly, once, at start.
	s.conn.CheckSettings(ctx, s.log)
	return nil
}

// Run fires jobs until ctx ends, then shuts down gracefully: it stops
// claiming, waits up to ShutdownGrace for running jobs, cancels those still
// running with cause ErrShutdown, records their outcomes, finishes their
// leases, writes the skip records that come due within ShutdownGrace of
// the loop's end, and returns nil. From the loop's end its liveness beats
// say it claims nothing, so the other replicas take its share at once.
// Run may be called once. It first calls Preflight unless that was
// called, and returns its error (store.ErrACL) before anything starts.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called twice")
	}
	if err := s.Preflight(ctx); err != nil {
		return err
	}
	defer s.warns.flush(true) // last: every warning of the run is counted
	runsCtx, cancelRuns := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelRuns(nil)
	s.runsCtx = runsCtx
	// The registration lasts until Run returns (it is removed last): the
	// replica is live while its runs finish.
	stopRegistry := s.registry.start(runsCtx)
	defer stopRegistry()
	stopEvents := s.events.start(runsCtx) // after the last run is recorded
	defer stopEvents()
	s.workers = newWorkers()
	// The clock is measured before the first claim, and then every
	// ClockCheck; the recorder writes deferred skip records. Both stop after
	// every firing has returned (the defers run in reverse order); the
	// recorder first writes the records that come due within the shutdown
	// grace, counted from the loop's end.
	stopClock := s.clock.start(runsCtx)
	defer stopClock()
	var graceEnd time.Time // set when the loop ends
	stopRecorder := s.recorder.start(runsCtx)
	defer func() { stopRecorder(graceEnd) }()
	if s.ownConn {
		stopRights := s.rights.start(runsCtx, func(ctx context.Context) error {
			return s.conn.CheckRights(ctx, s.opts.Prefix)
		})
		defer stopRights()
	}
	defer s.workers.stop() // after every firing has returned (below)
	defer func() {
		if s.gateCancel != nil {
			s.gateCancel() // every firing has returned: no claim is in flight
		}
	}()

	s.setAccepting(true) // manual triggers, from now until the loop ends
	s.share.awaitView(ctx)
	s.loop(ctx)
	graceEnd = s.opts.Clock.Now().Add(s.opts.ShutdownGrace)
	close(s.loopDone)
	s.setAccepting(false)

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	default:
	}
	s.log.Info().Int64("grace_ms", s.opts.ShutdownGrace.Milliseconds()).Msg("shutdown: waiting for running jobs")
	t := s.opts.Clock.NewTimer(graceEnd.Sub(s.opts.Clock.Now())) // the recorder's deadline too
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
