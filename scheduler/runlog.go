package scheduler

import (
	"time"

	"github.com/rs/zerolog"
)

// runFields is a run's logger fields (job, slot, fence), added as a
// zerolog hook when a line is written rather than as a child logger's
// context: Logger.With copies the context into a new 500-byte buffer, and a
// replica builds a run's logger (and an attempt's) for thousands of runs a
// second, most of which write no line at the configured level.
type runFields struct {
	job   string
	slot  time.Time
	fence int64
}

// Run adds the fields to e.
func (f *runFields) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("job", f.job).Time("slot", f.slot).Int64("fence", f.fence)
}

// attemptField is an attempt's number (1-based), added like runFields. As a
// small integer it converts to a zerolog.Hook without an allocation.
type attemptField int

// Run adds the "attempt" field to e.
func (n attemptField) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Int("attempt", int(n))
}
