package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unique"

	"github.com/robfig/cron/v3"
)

// ErrBadSchedule is wrapped by every error of Parse.
var ErrBadSchedule = errors.New("schedule: bad schedule")

var specParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a job's schedule: 5 fields (minute precision) or 6 (with
// seconds first), a descriptor (@yearly, @monthly, @weekly, @daily,
// @midnight, @hourly), or "@every D" with D a Go duration of at least one
// second and a whole number of seconds (robfig/cron would silently turn a
// negative, zero, sub-second or fractional D into something else). Fields
// are read in the zone loc (nil means UTC, never the machine's local zone);
// "@every" is zone-free, anchored to the Unix epoch. A CRON_TZ= or TZ=
// prefix is refused (use the job's timezone key), and so is a spec that can
// never fire (e.g. "0 0 30 2 *"). Errors wrap ErrBadSchedule.
func Parse(spec string, loc *time.Location) (s Schedule, err error) {
	if loc == nil {
		loc = time.UTC
	}
	defer func() { // robfig/cron is not ours; a panic in it is a bad schedule, not a crash
		if r := recover(); r != nil {
			s, err = Schedule{}, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, r)
		}
	}()
	trimmed := strings.TrimSpace(spec)
	switch {
	case trimmed == "":
		return Schedule{}, fmt.Errorf("%w: empty", ErrBadSchedule)
	case strings.HasPrefix(trimmed, "CRON_TZ=") || strings.HasPrefix(trimmed, "TZ="):
		return Schedule{}, fmt.Errorf("%w: %q: a time zone prefix is not accepted, use the job's timezone key", ErrBadSchedule, spec)
	case strings.HasPrefix(trimmed, "@every"):
		return parseEvery(spec, strings.TrimSpace(strings.TrimPrefix(trimmed, "@every")), loc)
	}
	sched, err := specParser.Parse(trimmed)
	if err != nil {
		return Schedule{}, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, err)
	}
	ss, ok := sched.(*cron.SpecSchedule)
	if !ok { // not reached with our parser options; keep it a clear error
		return Schedule{}, fmt.Errorf("%w: %q: unexpected schedule type %T", ErrBadSchedule, spec, sched)
	}
	// robfig's Next gives up after five years and returns the zero time.
	probe := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if ss.Next(probe).IsZero() {
		return Schedule{}, fmt.Errorf("%w: %q never fires", ErrBadSchedule, spec)
	}
	minute, hour := starFields(trimmed)
	return newSpec(trimmed, *ss, minute, hour, loc), nil
}

func parseEvery(spec, arg string, loc *time.Location) (Schedule, error) {
	if arg == "" {
		return Schedule{}, fmt.Errorf("%w: %q: @every needs a duration, e.g. @every 30s", ErrBadSchedule, spec)
	}
	d, err := time.ParseDuration(arg)
	if err != nil {
		return Schedule{}, fmt.Errorf("%w: %q: %v", ErrBadSchedule, spec, err)
	}
	switch {
	case d <= 0:
		return Schedule{}, fmt.Errorf("%w: %q: @every must be positive", ErrBadSchedule, spec)
	case d < time.Second:
		return Schedule{}, fmt.Errorf("%w: %q: @every must be at least 1s (slots have second precision)", ErrBadSchedule, spec)
	case d%time.Second != 0:
		return Schedule{}, fmt.Errorf("%w: %q: @every must be a whole number of seconds", ErrBadSchedule, spec)
	}
	return Schedule{unique.Make(def{kind: kindEvery, text: "@every " + d.String(), every: int64(d / time.Second), loc: loc})}, nil
}

// descriptors are the minute and hour fields of each descriptor.
var descriptors = map[string][2]string{
	"@yearly": {"0", "0"}, "@annually": {"0", "0"}, "@monthly": {"0", "0"},
	"@weekly": {"0", "0"}, "@daily": {"0", "0"}, "@midnight": {"0", "0"},
	"@hourly": {"0", "*"},
}

// starFields says whether the spec's minute and hour fields are wildcards
// in Vixie cron's sense: the field starts with "*" (or "?"), so "*/2" is
// one and "0-59" is not.
func starFields(spec string) (minute, hour bool) {
	f := strings.Fields(spec)
	if d, ok := descriptors[strings.ToLower(f[0])]; ok {
		f = d[:]
	} else if len(f) == 6 {
		f = f[1:] // seconds first
	}
	star := func(s string) bool { return strings.HasPrefix(s, "*") || strings.HasPrefix(s, "?") }
	return star(f[0]), star(f[1])
}
