package scheduler

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// warnKind is a kind of warning about a single firing, which an overload
// or an outage can raise for thousands of firings a second.
type warnKind int

const (
	warnSkipped        warnKind = iota // a slot skipped (loop.go, skipped)
	warnClaimFailed                    // a claim's first attempt failed (fire.go)
	warnWithdrawFailed                 // a claim that may have won not withdrawn
	warnNotifyDropped                  // a notification dropped (events.go)
	warnKinds
)

// warnMsg is the message of each kind's lines, also named ("of") in the
// line that counts the suppressed ones.
var warnMsg = [warnKinds]string{
	warnSkipped:        "slot skipped",
	warnClaimFailed:    "claim failed; retrying the same claim, nothing runs without it",
	warnWithdrawFailed: "could not withdraw a claim that may have won; retrying in the background",
	warnNotifyDropped:  "notification dropped: too many pending",
}

// warnBurst is how many lines of one kind a replica writes in a
// warnWindow; the rest of the window's are counted, not written.
const (
	warnBurst  = 20
	warnWindow = time.Second
)

// warnLimit bounds the warnings a replica writes about single firings, so
// that when thousands of firings a second meet the same fault (Redis down,
// or a replica behind) the log stays readable and writing it does not take
// the CPU that claiming needs. Of each kind, the first warnBurst lines of a
// window are written; the others are counted and reported in one line
// ("warnings suppressed", with their count and message) once the window
// is over: before the kind's next line, or at the latest by flush, which
// the recorder calls at least every second and Run at its end. The
// metrics count every firing regardless. Safe for concurrent use.
type warnLimit struct {
	clock Clock
	log   zerolog.Logger

	mu    sync.Mutex
	kinds [warnKinds]warnWindowState
}

// warnWindowState is one kind's current window.
type warnWindowState struct {
	start      time.Time
	written    int
	suppressed int
}

// over says whether the window has ended at now: warnWindow has passed
// since it began, or the clock stepped back before its start.
func (st *warnWindowState) over(now time.Time) bool {
	return now.Sub(st.start) >= warnWindow || now.Before(st.start)
}

func newWarnLimit(clock Clock, log zerolog.Logger) *warnLimit {
	return &warnLimit{clock: clock, log: log}
}

// allow says whether a line of kind k may be written now; when not, the
// line is counted. It reports the previous window's suppressed lines first
// when a new window begins (also when the clock stepped back).
func (w *warnLimit) allow(k warnKind) bool {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	st := &w.kinds[k]
	if st.written == 0 || st.over(now) {
		w.report(k)
		*st = warnWindowState{start: now}
	}
	if st.written < warnBurst {
		st.written++
		return true
	}
	st.suppressed++
	return false
}

// flush reports the suppressed lines of every kind whose window is over,
// or of every kind when final (Run's end).
func (w *warnLimit) flush(final bool) {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range warnKinds {
		st := &w.kinds[k]
		if st.suppressed > 0 && (final || st.over(now)) {
			w.report(k)
			*st = warnWindowState{}
		}
	}
}

// report writes the line that counts k's suppressed lines, if any; the
// caller then starts the kind's next window. Called with mu held.
func (w *warnLimit) report(k warnKind) {
	st := &w.kinds[k]
	if st.suppressed == 0 {
		return
	}
	w.log.Warn().Int("suppressed", st.suppressed).Str("of", warnMsg[k]).Int64("window_ms", warnWindow.Milliseconds()).
		Int("written", st.written).Msg("warnings suppressed: too many of one kind; the metrics count every one")
}
