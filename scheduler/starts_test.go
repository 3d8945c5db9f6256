package scheduler

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
)

// waitAsync runs st.wait on a goroutine and returns a channel closed when
// it returns, once the wait has reached its bound's timer (fc counts it),
// so that the caller knows the wait blocks.
func waitAsync(t *testing.T, st *starts, fc *fakeClock, timers int) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.wait()
	}()
	waitFor(t, 5*time.Second, func() bool { return fc.Waiting() == timers })
	return done
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func closedWithin(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: wait still blocked after 5 s, want returned", what)
	}
}

// startsWon returns starts on a fake clock, bounded by startsWaitMax, with
// won firings counted and started of them started.
func startsWon(won, started int) (*fakeClock, *starts) {
	fc := newFakeClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	st := newStarts(fc, startsWaitMax)
	for range won {
		st.won()
	}
	for range started {
		st.started()
	}
	return fc, st
}

func TestStarts(t *testing.T) {
	t.Run("nothing pending: the wait returns at once", func(t *testing.T) {
		fc, st := startsWon(1, 1)
		st.wait()
		if got := fc.Waiting(); got != 0 {
			t.Errorf("timers started: got %d, want 0", got)
		}
	})

	t.Run("the wait ends when the last run that won starts", func(t *testing.T) {
		fc, st := startsWon(3, 1) // 1: the waiter's own run
		a := waitAsync(t, st, fc, 1)
		b := waitAsync(t, st, fc, 1) // a second waiter shares the bound
		st.started()
		if isClosed(a) || isClosed(b) {
			t.Fatalf("returned with one run still to start: got a %v b %v, want both blocked", isClosed(a), isClosed(b))
		}
		st.started()
		closedWithin(t, a, "waiter a")
		closedWithin(t, b, "waiter b")
		waitFor(t, 5*time.Second, func() bool { return fc.Waiting() == 0 }) // the bound stopped
	})

	t.Run("the wait ends at startsWaitMax when a run does not start", func(t *testing.T) {
		fc, st := startsWon(2, 1)
		done := waitAsync(t, st, fc, 1)
		fc.Advance(startsWaitMax - time.Nanosecond)
		if isClosed(done) {
			t.Fatalf("returned before startsWaitMax: got returned, want blocked")
		}
		fc.Advance(time.Nanosecond)
		closedWithin(t, done, "after startsWaitMax")
		// The late run still starts, and the count is back to none.
		st.started()
		st.wait()
	})

	t.Run("a later winner holds back later waits only", func(t *testing.T) {
		fc, st := startsWon(1, 1)
		st.wait() // returned: nothing pending
		st.won()  // a claim answered after the others started
		st.won()
		st.started()
		done := waitAsync(t, st, fc, 1)
		st.started()
		closedWithin(t, done, "after the later winner started")
	})
}

// lineLog collects a logger's lines in the order they were written.
type lineLog struct {
	mu    sync.Mutex
	lines [][]byte
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, append([]byte(nil), p...))
	return len(p), nil
}

func (l *lineLog) snapshot() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.lines...)
}

// TestStartsBeforeRecords runs a herd of instant jobs due every second on
// one replica and checks, in its log, that within a slot every "run
// started" line comes before the first "run" line (written once the run
// was recorded): without starts, the first runs to return record while
// the last ones still wait to start.
func TestStartsBeforeRecords(t *testing.T) {
	const herd = 100
	srv := redistest.Start(t, redistest.Options{})
	var ll lineLog
	log := zerolog.New(&ll).Level(zerolog.InfoLevel)
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	var js []*jobs.Job
	for i := range herd {
		js = append(js, testJob(t, fmt.Sprintf("herd%03d", i), "* * * * * *", fn, nil))
	}
	from := time.Now().Truncate(time.Second).Add(3 * time.Second) // dispatched ahead by then
	// The bound is raised for this test: on a loaded test machine one
	// instant's starts may take longer than startsWaitMax, which then ends
	// the wait as designed (TestStarts covers it on a fake clock); here the
	// order is what is checked.
	in := startInstanceTuned(t, clientAt(t, srv.Addr()), js, Options{Replica: "r1", Logger: &log}, func(s *Scheduler) {
		s.startsWait = 5 * time.Second
	})
	full := func(slot time.Time) bool {
		n := 0
		for _, e := range l.snapshot() {
			if e.slot.Equal(slot) {
				n++
			}
		}
		return n == herd
	}
	last := from.Add(2 * time.Second)
	waitFor(t, 20*time.Second, func() bool { return full(last) })
	in.stop(t) // every run of those slots recorded: their "run" lines are in

	type line struct {
		Message string    `json:"message"`
		Slot    time.Time `json:"slot"`
	}
	started := map[time.Time]int{}    // "run started" lines so far, by slot
	recordedAt := map[time.Time]int{} // "run started" lines of the slot before its first "run" line
	for _, b := range ll.snapshot() {
		var ln line
		if err := json.Unmarshal(b, &ln); err != nil {
			t.Fatalf("log line %q: %v", b, err)
		}
		switch ln.Message {
		case "run started":
			started[ln.Slot]++
		case "run":
			if _, ok := recordedAt[ln.Slot]; !ok {
				recordedAt[ln.Slot] = started[ln.Slot]
			}
		}
	}
	for slot := from; !slot.After(last); slot = slot.Add(time.Second) {
		if got := recordedAt[slot.UTC()]; got != herd {
			t.Errorf("slot %s: got %d of %d runs started before the first was recorded, want all", slot.Format(time.TimeOnly), got, herd)
		}
	}
}
