package scheduler

import (
	"time"

	"github.com/redcron/redcron/scheduler/schedule"
)

// maxSkipCount bounds how many skipped slots decideCatchUp counts one by one.
const maxSkipCount = 10000

// catchUp is what a replica does about a job's slots in (last, now].
type catchUp struct {
	// Slot is the one slot to claim; zero: none.
	Slot time.Time
	// Skipped counts the slots in (last, now] this replica passes over (at
	// most maxSkipCount; Capped says the count stopped there).
	Skipped int
	Capped  bool
	// Oldest and Newest are the first and last skipped slots.
	Oldest, Newest time.Time
}

// decideCatchUp is the pure catch-up rule. last is the latest slot this
// replica already handled (zero at start), prev is sched.Prev(now), window
// the job's catchup_window. Only the most recent slot can be claimed, and
// only when it is younger than window; every other slot after last is
// skipped. At start (last zero) nothing earlier than prev is counted: this
// replica never saw those slots.
func decideCatchUp(sched schedule.Schedule, last, now, prev time.Time, window time.Duration) catchUp {
	var d catchUp
	if prev.IsZero() || prev.After(now) || (!last.IsZero() && !prev.After(last)) {
		return d
	}
	skip := func(t time.Time) {
		if d.Skipped == 0 {
			d.Oldest = t
		}
		d.Newest = t
		d.Skipped++
	}
	if !last.IsZero() {
		for t := sched.Next(last); !t.IsZero() && t.Before(prev); t = sched.Next(t) {
			if d.Skipped >= maxSkipCount {
				d.Capped = true
				break
			}
			skip(t)
		}
	}
	if now.Sub(prev) < window {
		d.Slot = prev
	} else {
		skip(prev)
	}
	return d
}
