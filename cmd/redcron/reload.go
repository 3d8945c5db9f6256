package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler"
)

// reloadOnHUP reloads cfg's file on every SIGHUP until ctx ends or the
// returned func stops it: a valid file replaces the scheduler's jobs (see
// Scheduler.Reload); an invalid one is refused with its problems, logged
// and counted, and the old jobs keep running. Cluster settings (redis:,
// prefix, clock skew, grace) need a restart: a change is warned about.
func reloadOnHUP(ctx context.Context, cfg *jobs.Config, sched *scheduler.Scheduler, errs prometheus.Counter, log zerolog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			next, err := jobs.Load(cfg.File)
			if err != nil {
				errs.Inc()
				var ce *jobs.ConfigError
				if errors.As(err, &ce) {
					for _, p := range ce.Problems {
						log.Error().Str("file", p.File).Int("line", p.Line).Str("job", p.Job).Str("field", p.Field).Msg(p.Msg)
					}
				}
				log.Error().Err(err).Msg("SIGHUP: config refused; the old jobs keep running")
				continue
			}
			// The new file's node tree is garbage now, while the old jobs
			// are live: collect it before the new jobs' states are built.
			runtime.GC()
			if next.Redis.Prefix != cfg.Redis.Prefix || next.Redis.MaxClockSkew != cfg.Redis.MaxClockSkew ||
				next.ShutdownGrace != cfg.ShutdownGrace || !sameRedis(next.Redis, cfg.Redis) {
				log.Warn().Msg("SIGHUP: redis:, prefix, max_clock_skew and shutdown_grace changes take effect at the next restart")
			}
			// The new file's secrets are redacted from now on too (the
			// old ones stay: records and logs may still show them).
			sched.Secrets().Merge(next.Secrets)
			if err := sched.Reload(next.Jobs); err != nil {
				errs.Inc()
				log.Error().Err(err).Msg("SIGHUP: jobs refused; the old jobs keep running")
				continue
			}
			log.Info().Str("config", next.File).Int("jobs", len(next.Jobs)).Msg("SIGHUP: config reloaded")
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// sameRedis says whether two redis: blocks name the same Redis.
func sameRedis(a, b jobs.RedisConfig) bool {
	eq := func(x, y []string) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a.URL == b.URL && eq(a.Cluster, b.Cluster) && eq(a.Quorum, b.Quorum) && (a.Sentinel == nil) == (b.Sentinel == nil)
}
