package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/redisconn"
	"github.com/redcron/redcron/scheduler/store"
)

// ErrConfigMismatch is returned by FromConfig when opts set a cluster
// setting that the file sets differently: every replica must agree on
// them, so they come from jobs.yaml only.
var ErrConfigMismatch = errors.New("scheduler: option differs from jobs.yaml")

// FromConfig builds the Scheduler of a loaded jobs.yaml, as cmd/redcron
// does: cfg's jobs, with the file's cluster settings (redis.prefix,
// redis.max_clock_skew, shutdown_grace) over a connection dialed from its
// redis: block (or opts.RedisURL) with the client settings the locker
// needs, unless opts.Conn brings one. The settings every replica must share
// come from the file: opts may leave Prefix, MaxClockSkew and ShutdownGrace
// zero or repeat the file's values, otherwise FromConfig fails with
// ErrConfigMismatch. The config's Secrets are redacted from what the
// scheduler writes (see Options.Secrets). It also fails with redisconn.ErrNoRedis when no Redis
// is configured, or New's errors. Close the scheduler after Run returned.
func FromConfig(cfg *jobs.Config, opts Options) (*Scheduler, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil config", ErrInvalidJob)
	}
	// The file's values, or the defaults a stock replica uses for what the
	// file leaves out.
	file := Options{Prefix: cfg.Redis.Prefix, MaxClockSkew: cfg.Redis.MaxClockSkew, ShutdownGrace: cfg.ShutdownGrace}.clusterDefaults()
	for _, c := range []struct {
		name      string
		opt, file any
		zero      bool
	}{
		{"prefix", opts.Prefix, file.Prefix, opts.Prefix == ""},
		{"max_clock_skew", opts.MaxClockSkew, file.MaxClockSkew, opts.MaxClockSkew == 0},
		{"shutdown_grace", opts.ShutdownGrace, file.ShutdownGrace, opts.ShutdownGrace == 0},
	} {
		if !c.zero && c.opt != c.file {
			return nil, fmt.Errorf("%w: %s is %v in the options, %v in %s", ErrConfigMismatch, c.name, c.opt, c.file, cfg.File)
		}
	}
	opts.Prefix, opts.MaxClockSkew, opts.ShutdownGrace = file.Prefix, file.MaxClockSkew, file.ShutdownGrace
	if opts.Secrets == nil {
		opts.Secrets = cfg.Secrets
	} else {
		opts.Secrets.Merge(cfg.Secrets)
	}
	conn, own := opts.Conn, false
	if conn == nil {
		var err error
		if conn, err = redisconn.Dial(cfg.Redis, opts.RedisURL, locker.Options{}); err != nil {
			return nil, fmt.Errorf("scheduler: %s: %w", cfg.File, err)
		}
		own = true
	}
	s, err := New(cfg.Jobs, conn.Locker, opts)
	if err != nil {
		if own {
			_ = conn.Close()
		}
		return nil, err
	}
	s.conn, s.ownConn = conn, own
	return s, nil
}

// Close closes the Redis connection FromConfig dialed (none otherwise);
// call it after Run returned.
func (s *Scheduler) Close() error {
	if s.ownConn {
		return s.conn.Close()
	}
	return nil
}

// Store is the scheduler's view of the Redis data model (pause state,
// history, marks), for the status API; nil when its locker is not a
// *locker.Locker.
func (s *Scheduler) Store() *store.Store { return s.store }

// Jobs are the scheduler's jobs (as last loaded), in file order; callers
// must not modify them.
func (s *Scheduler) Jobs() []*jobs.Job {
	states := s.snapshot()
	out := make([]*jobs.Job, len(states))
	for i, js := range states {
		out[i] = js.job
	}
	return out
}

// Secrets are what the scheduler redacts (Options.Secrets); nil when
// none. After a reload, add the new config's: s.Secrets().Merge(cfg.Secrets).
func (s *Scheduler) Secrets() *jobs.Secrets { return s.opts.Secrets }

// Now is the scheduler's clock.
func (s *Scheduler) Now() time.Time { return s.opts.Clock.Now() }

// Conn is the Redis connection of a scheduler built by FromConfig, else
// nil.
func (s *Scheduler) Conn() *redisconn.Conn { return s.conn }

// Ready is nil while this replica may claim: Redis answers (the one node,
// or a majority of a quorum; checked when the scheduler has a Conn) and its
// clock was measured within MaxClockSkew of Redis's. Otherwise it says why
// not; /readyz serves it.
func (s *Scheduler) Ready(ctx context.Context) error {
	if s.conn != nil {
		if err := s.conn.Ready(ctx); err != nil {
			return fmt.Errorf("redis unreachable: %w", err)
		}
	}
	return s.clock.err()
}
