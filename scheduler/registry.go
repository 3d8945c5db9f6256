package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// registry keeps this replica registered in Redis (a heartbeat every
// Heartbeat, with a TTL of three, and at once when work sharing sees a
// registration it does not know), watches the other live replicas for
// configuration drift (a job they define differently), takes the trigger
// requests queued by `redcron trigger`, and runs work sharing's beats. One
// goroutine each, owned by Run; the registration is removed when Run
// returns.
type registry struct {
	s       *Scheduler
	started time.Time
	drift   map[string]bool // job -> drifting, as last logged; heartbeat goroutine only
	// selfCache is the registration built for the jobs selfOf (the
	// scheduler's jobs slice, replaced by each reload); heartbeat goroutine
	// only.
	selfOf    []*jobState
	selfCache store.Registration
	gen       int64 // selfCache's Generation
}

// triggerPoll is how often a replica looks for queued trigger requests.
const triggerPoll = 250 * time.Millisecond

func newRegistry(s *Scheduler) *registry {
	return &registry{s: s, drift: map[string]bool{}}
}

// start runs the heartbeat and the trigger poller until the returned func,
// which stops them, waits for them and unregisters the replica. Without a
// store (a Locker that is not *locker.Locker) it does nothing.
func (r *registry) start(ctx context.Context) (stop func()) {
	s := r.s
	if s.store == nil {
		return func() {}
	}
	r.started = s.opts.Clock.Now()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 3)
	n := 2
	go func() {
		defer func() { done <- struct{}{} }()
		r.loop(ctx, s.opts.Heartbeat, s.share.refresh, r.beat)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		r.loop(ctx, triggerPoll, nil, r.takeTriggers)
	}()
	if s.share.on() {
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			s.share.run(ctx)
		}()
	}
	return func() {
		cancel()
		for range n {
			<-done
		}
		uctx, ucancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
		defer ucancel()
		_ = s.store.Unregister(uctx, s.opts.Replica)
	}
}

// loop calls f now and then every d, or sooner when kick receives, until
// ctx ends.
func (r *registry) loop(ctx context.Context, d time.Duration, kick <-chan struct{}, f func(context.Context)) {
	clk := r.s.opts.Clock
	for {
		f(ctx)
		last := clk.Now()
		t := clk.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-kick:
			t.Stop()
			// At most one extra call a second, however often kicked.
			if sleep(ctx, clk, time.Second-clk.Now().Sub(last)) != nil {
				return
			}
		}
	}
}

// self is this replica's registration, built again only when the jobs
// changed (with 100,000 jobs, building it every heartbeat was most of an
// idle replica's CPU). Heartbeat goroutine only.
func (r *registry) self() store.Registration {
	s := r.s
	states := s.snapshot()
	if r.selfOf != nil && len(states) == len(r.selfOf) && (len(states) == 0 || &states[0] == &r.selfOf[0]) {
		return r.selfCache
	}
	r.gen++
	me := store.Replica{Replica: s.opts.Replica, Version: s.opts.Version, Started: r.started.UTC(), HTTP: s.opts.HTTP, Generation: r.gen, Jobs: make(map[string]string, len(states))}
	h := sha256.New()
	for _, js := range states {
		fp := js.fingerprint
		me.Jobs[js.job.Name] = fp
		h.Write([]byte(js.job.Name + "=" + fp + "\n"))
	}
	h.Write([]byte(s.opts.Prefix + "\n" + s.opts.MaxClockSkew.String() + "\n" + s.opts.ShutdownGrace.String()))
	me.ConfigHash = hex.EncodeToString(h.Sum(nil)[:6])
	r.selfOf, r.selfCache = states, store.NewRegistration(me)
	return r.selfCache
}

// beat registers this replica, then reads every live replica and updates
// the drift of each job (gauge, and a warning when it starts or stops).
func (r *registry) beat(ctx context.Context) {
	s := r.s
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	me := r.self()
	// The beats may say this config hash before it is registered: the
	// replicas with the same hash need no registration to rank this one,
	// and the others, which do, claim until they have read it. So a
	// starved replica whose registration is slow to write still shares.
	s.share.setHash(me.ConfigHash)
	if err := s.store.Heartbeat(cctx, me, 3*s.opts.Heartbeat); err != nil {
		s.log.Debug().Err(err).Msg("heartbeat failed")
		return
	}
	live, err := s.store.Replicas(cctx)
	if err != nil {
		s.log.Debug().Err(err).Msg("reading the live replicas failed")
		return
	}
	s.share.setMembers(live)
	s.metrics.replicas.Set(float64(len(live)))
	drift := store.Drift(live)
	if !anyTrue(drift) && !anyTrue(r.drift) {
		return // no job drifts, and none did: every gauge is 0 already
	}
	for _, j := range s.Jobs() {
		d := drift[j.Name]
		v := 0.0
		if d {
			v = 1
		}
		if jm := s.metrics.jobs.get(j.Name); jm != nil {
			jm.drift.Set(v)
		}
		if d != r.drift[j.Name] {
			if d {
				var who []string
				for _, rep := range live {
					who = append(who, rep.Replica+"="+orMissing(rep.Jobs[j.Name]))
				}
				s.log.Warn().Str("job", j.Name).Strs("fingerprints", who).Msg("config drift: live replicas define this job differently")
			} else {
				s.log.Info().Str("job", j.Name).Msg("config drift over: live replicas agree on this job")
			}
			r.drift[j.Name] = d
		}
	}
}

// anyTrue reports whether some job of m is true.
func anyTrue(m map[string]bool) bool {
	for _, v := range m {
		if v {
			return true
		}
	}
	return false
}

func orMissing(fp string) string {
	if fp == "" {
		return "(not defined)"
	}
	return fp
}

// takeTriggers runs the trigger requests queued for the jobs this replica
// has; a request for a job it lacks goes back to the queue for another.
func (r *registry) takeTriggers(ctx context.Context) {
	s := r.s
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	reqs, err := s.store.TakeTriggers(cctx, 16)
	if err != nil || len(reqs) == 0 {
		return
	}
	for _, req := range reqs {
		if s.job(req.Job) == nil {
			_ = s.store.QueueTrigger(cctx, req) // another replica may have it
			continue
		}
		// A refusal (overlap, or another replica took the same request) is
		// recorded in the manual run's mark, which the requester reads.
		_, _, err := s.trigger(cctx, req.Job, req.ID)
		if errors.Is(err, ErrNotRunning) {
			_ = s.store.QueueTrigger(cctx, req) // shutting down: for another replica
			continue
		}
		s.log.Info().Str("job", req.Job).Int64("trigger_id", req.ID).Str("by", req.By).AnErr("error", err).Msg("trigger request taken")
	}
}
