package locker

import (
	"errors"
	"time"
)

// watchdog renews one lease every TTL/3 until stopped or the lease ends.
// Transient failures are retried sooner, until the local deadline, when the
// lease's deadline timer (not the watchdog) cancels it: that timer fires
// even while a renewal call is blocked, and the call, bounded by the
// deadline and derived from the lease's hold context, then returns. A
// replaced lease is renewed only until its stopBy (see Lease.replaced).
// Its goroutine starts with the first renewal: most runs end before it, and
// a replica runs thousands a second.
type watchdog struct {
	first *time.Timer   // starts the goroutine at the first renewal
	quit  chan struct{} // closed by stop
	done  chan struct{} // closed when the goroutine exits
}

func startWatchdog(l *Lease) *watchdog {
	w := &watchdog{quit: make(chan struct{}), done: make(chan struct{})}
	w.first = time.AfterFunc(l.bid.claim.TTL/3, func() { w.run(l) })
	return w
}

// stop asks the goroutine to exit and waits for it, including for a
// renewal in flight; a goroutine not yet started never starts.
func (w *watchdog) stop() {
	close(w.quit)
	if w.first.Stop() {
		return
	}
	<-w.done
}

func (w *watchdog) run(l *Lease) {
	defer close(w.done)
	every := l.bid.claim.TTL / 3
	retry := max(every/4, 5*time.Millisecond)
	t := time.NewTimer(0) // the first renewal is due: this runs from w.first
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-l.hold.Done():
			return
		case <-t.C:
		}
		if !l.renewing() {
			return // replaced, and its stop budget is spent: let it expire
		}
		err := l.renew(l.hold)
		switch {
		case err == nil:
			t.Reset(every)
		case l.hold.Err() != nil || errors.Is(err, ErrLeaseLost):
			return
		default:
			l.lk.opts.Logger.Debug().Str("key", l.bid.claim.Key).Int64("fence", l.fence).Int64("retry_in_ms", retry.Milliseconds()).Err(err).Msg("lease renewal failed")
			t.Reset(retry)
		}
	}
}
