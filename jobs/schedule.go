package jobs

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var specParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a schedule: 5 fields (minute precision) or 6 (with
// seconds first), a descriptor (@yearly, @monthly, @weekly, @daily,
// @midnight, @hourly), or "@every D" with D a Go duration of at least one
// second and a whole number of seconds (robfig/cron would silently turn a
// negative, zero, sub-second or fractional D into something else).
//
// A field schedule is returned as a *cron.SpecSchedule whose Location is loc
// (nil means UTC, never the machine's local zone); "@every" returns a
// cron.ConstantDelaySchedule, which is zone-free (the scheduler anchors it to
// the Unix epoch). A CRON_TZ= or TZ= prefix is refused: use the job's
// `timezone` key. A spec that can never fire (e.g. "0 0 30 2 *") is refused.
// Errors wrap ErrBadSchedule.
func ParseSchedule(spec string, loc *time.Location) (s cron.Schedule, err error) {
	if loc == nil {
		loc = time.UTC
	}
	defer func() { // robfig/cron is not ours; a panic in it is a bad schedule, not a crash
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, r)
		}
	}()
	trimmed := strings.TrimSpace(spec)
	switch {
	case trimmed == "":
		return nil, fmt.Errorf("%w: empty", ErrBadSchedule)
	case strings.HasPrefix(trimmed, "CRON_TZ=") || strings.HasPrefix(trimmed, "TZ="):
		return nil, fmt.Errorf("%w: %q: a time zone prefix is not accepted, use the job's timezone key", ErrBadSchedule, spec)
	case strings.HasPrefix(trimmed, "@every"):
		return parseEvery(spec, strings.TrimSpace(strings.TrimPrefix(trimmed, "@every")))
	}
	sched, err := specParser.Parse(trimmed)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, err)
	}
	ss, ok := sched.(*cron.SpecSchedule)
	if !ok { // not reached with our parser options; keep it a clear error
		return nil, fmt.Errorf("%w: %q: unexpected schedule type %T", ErrBadSchedule, spec, sched)
	}
	ss.Location = loc
	// robfig's Next gives up after five years and returns the zero time.
	probe := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if ss.Next(probe).IsZero() {
		return nil, fmt.Errorf("%w: %q never fires", ErrBadSchedule, spec)
	}
	return ss, nil
}

func parseEvery(spec, arg string) (cron.Schedule, error) {
	if arg == "" {
		return nil, fmt.Errorf("%w: %q: @every needs a duration, e.g. @every 30s", ErrBadSchedule, spec)
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, err)
	}
	switch {
	case d <= 0:
		return nil, fmt.Errorf("%w: %q: @every must be positive", ErrBadSchedule, spec)
	case d < time.Second:
		return nil, fmt.Errorf("%w: %q: @every must be at least 1s (slots have second precision)", ErrBadSchedule, spec)
	case d%time.Second != 0:
		return nil, fmt.Errorf("%w: %q: @every must be a whole number of seconds", ErrBadSchedule, spec)
	}
	return cron.ConstantDelaySchedule{Delay: d}, nil
}

// interval estimates the shortest gap between two fires of s, for the
// jitter bound; 0 when unknown. It scans up to a year of fires, or
// maxIntervalScan of them, from the start of 2025.
func interval(s cron.Schedule) time.Duration {
	switch s := s.(type) {
	case cron.ConstantDelaySchedule:
		return s.Delay
	case *cron.SpecSchedule:
		t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		end := t.AddDate(1, 0, 0)
		var best time.Duration
		prev := s.Next(t)
		for range maxIntervalScan {
			next := s.Next(prev)
			if next.IsZero() || prev.IsZero() || next.After(end) {
				break
			}
			if gap := next.Sub(prev); best == 0 || gap < best {
				best = gap
			}
			prev = next
		}
		return best
	}
	return 0
}

// maxIntervalScan bounds interval's scan (a per-second job finds its gap
// at once; a sparse one needs a year of fires).
const maxIntervalScan = 20000
