package scheduler

import (
	"sync"
	"time"
)

// startsWaitMax bounds how long a run's record waits for the other runs of
// its instant to start (see starts). A replica starts hundreds of runs of
// one instant within a few milliseconds; when the instant's starts take
// longer, the replica is behind (overloaded, stalled, or its clock stepped
// back), and holding records back then holds leases and bunches the
// finishes that the next instant's claims queue behind: with a bound of
// 1 s, 10,000 firings a second missed over a quarter more (bench/README.md).
const startsWaitMax = 50 * time.Millisecond

// starts lets the runs of one instant start before any of them is
// recorded. When hundreds of firings of a replica are due at the same
// instant and their jobs are short, the first runs to return encoded their
// records and sent their finishes while the last runs of the instant still
// waited to start, on the same CPUs. A run that returns while firings of
// its instant that won their claim have not started waits for them (at
// most its bound, startsWaitMax in production) before it records its
// outcome. Only firings handed out ahead of their slot (a gate) with no
// jitter take part: a jittered run starts later by design. Safe for
// concurrent use.
type starts struct {
	clock Clock
	bound time.Duration // how long a wait lasts at most

	mu      sync.Mutex
	pending int           // won, due at the instant, not started yet
	all     chan struct{} // closed when pending falls to 0; nil: none waits
}

// newStarts returns the starts of one instant, whose waits last at most
// bound on clock.
func newStarts(clock Clock, bound time.Duration) *starts {
	return &starts{clock: clock, bound: bound}
}

// won counts a firing that won its claim and will start at the instant.
func (st *starts) won() {
	st.mu.Lock()
	st.pending++
	st.mu.Unlock()
}

// started ends what won counted: the run has started.
func (st *starts) started() {
	st.mu.Lock()
	st.pending--
	if st.pending == 0 {
		st.release(st.all)
	}
	st.mu.Unlock()
}

// release ends the wait on all, unless it has ended. Called with mu held.
func (st *starts) release(all chan struct{}) {
	if all != nil && st.all == all {
		close(all)
		st.all = nil
	}
}

// wait returns once no firing counted by won is still to start, or after
// st's bound. A firing that wins later (a claim answered after the
// others started) counts again, but does not hold back a wait that has
// returned.
func (st *starts) wait() {
	st.mu.Lock()
	if st.pending == 0 {
		st.mu.Unlock()
		return
	}
	all := st.all
	if all == nil {
		// The first waiter starts the bound, on a goroutine that ends
		// with the wait.
		all = make(chan struct{})
		st.all = all
		t := st.clock.NewTimer(st.bound)
		go func() {
			select {
			case <-t.C():
				st.mu.Lock()
				st.release(all)
				st.mu.Unlock()
			case <-all:
				t.Stop()
			}
		}()
	}
	st.mu.Unlock()
	<-all
}
