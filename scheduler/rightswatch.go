package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/redcron/redcron/scheduler/store"
)

// rightsRecheck is the least time between two checks of the Redis user's
// rights while the replica runs, and how often they are checked again
// while the user lacks some.
const rightsRecheck = 30 * time.Second

// rightsWatch names what the Redis ACL user lacks when its rights shrink
// while the replica runs (the check at start passed): inside a script,
// Redis before 7.2 names no command in its refusal, and every claim,
// finish and skip record would fail with it. A refusal seen on any of them
// (seen) asks for the check again, at most once per rightsRecheck; a check
// that finds refusals logs an error naming the commands and the ACL SETUSER
// that adds them, and is repeated (and logged) every rightsRecheck until
// it passes, which is logged too. Only a scheduler with a connection of
// its own (FromConfig) runs it.
type rightsWatch struct {
	s    *Scheduler
	kick chan struct{}
}

func newRightsWatch(s *Scheduler) *rightsWatch {
	return &rightsWatch{s: s, kick: make(chan struct{}, 1)}
}

// seen asks for a check when err is the ACL's refusal; it never blocks,
// and is a no-op before start, after stop and on a nil watch.
func (w *rightsWatch) seen(err error) {
	if w == nil || err == nil || !store.ACLRefused(err) {
		return
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// start runs the watch with check (the rights check, bounded by itself)
// until ctx ends or the returned func, which stops it and waits for it.
func (w *rightsWatch) start(ctx context.Context, check func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, check)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (w *rightsWatch) run(ctx context.Context, check func(context.Context) error) {
	clk := w.s.opts.Clock
	var last time.Time // the last check, on clk
	refused := false   // the last check found refusals
	for {
		if refused {
			// Checked again until the user may run everything.
			if sleep(ctx, clk, rightsRecheck) != nil {
				return
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
			if !last.IsZero() && sleepUntil(ctx, clk, last.Add(rightsRecheck)) != nil {
				return
			}
		}
		last = clk.Now()
		err := check(ctx)
		switch {
		case errors.Is(err, store.ErrACL):
			w.s.log.Error().Err(err).Msg("the Redis user may no longer run what the scripts call: claims and records fail until it may")
			refused = true
		case err == nil && refused:
			// Drop a refusal seen before the rights came back, before the
			// line says so: one seen after the line asks for a check.
			select {
			case <-w.kick:
			default:
			}
			refused = false
			w.s.log.Info().Msg("the Redis user may run what the scripts call again")
		case err == nil:
			w.s.log.Warn().Msg("a script was refused by the Redis ACL, yet its user may run every command the scripts call")
		case ctx.Err() == nil:
			w.s.log.Warn().Err(err).Msg("a script was refused by the Redis ACL, and its user's rights could not be checked")
		}
	}
}
