package scheduler

import (
	"sync"
	"time"
)

// workerIdle is how long an idle firing goroutine waits for the next firing
// before it exits. It is resource management, not scheduling, so it runs on
// the real clock; Run's end stops idle workers at once.
const workerIdle = 30 * time.Second

// workers runs firings on reused goroutines. A job firing every second on
// 1,000 jobs starts 1,000 firings at the same instant; a fresh goroutine for
// each grows its stack again (through the claim's Redis call) every time,
// which showed up as a fifth of the scheduler's CPU right when the claims
// are due. A firing is handed to an idle worker when one waits, and
// otherwise starts a new goroutine, so concurrency is never capped: a long
// job never delays another job's claim.
type workers struct {
	handoff chan func() // unbuffered: only idle workers receive
	quit    chan struct{}
	wg      sync.WaitGroup // every worker goroutine
}

func newWorkers() *workers {
	return &workers{handoff: make(chan func()), quit: make(chan struct{})}
}

// do runs f on an idle worker, or on a new one.
func (w *workers) do(f func()) {
	select {
	case w.handoff <- f:
		return
	default:
	}
	w.wg.Add(1)
	go w.run(f)
}

func (w *workers) run(f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil
		idle.Reset(workerIdle)
		select {
		case f = <-w.handoff:
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}

// stop makes idle workers exit and waits for every worker; call it once,
// after the last do and after every firing has returned.
func (w *workers) stop() {
	close(w.quit)
	w.wg.Wait()
}
