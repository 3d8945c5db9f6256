// Package schedule gives a job's slots: the nominal instants its cron spec
// names, the same on every replica, with epoch-anchored "@every", per-job
// time zones and Vixie cron's daylight-saving rule. It is the one place
// that parses schedules (Parse): jobs validates with it and the scheduler
// fires by it, and robfig/cron's types stay inside it.
package schedule

import (
	"time"
	"unique"

	"github.com/robfig/cron/v3"
)

const (
	// maxScan bounds the candidates one Next call examines; robfig's own
	// Next already gives up after five years.
	maxScan = 1 << 17
	// maxPrevSpan bounds how far back Prev looks for a slot.
	maxPrevSpan = 6 * 366 * 24 * 3600
	day         = 24 * 3600
)

type scheduleKind uint8

const (
	kindSpec scheduleKind = iota + 1
	kindEvery
)

// Schedule gives a job's slots: the nominal instants its cron spec names, in
// UTC with second precision, the same on every replica. Build it with
// [Parse]; the zero Schedule has no slots. It is comparable, so a scheduler
// can share work between jobs with equal schedules.
//
// Rules:
//   - "@every D" slots are the multiples of D (whole seconds, at least 1s)
//     since the Unix epoch, so replicas started at different times agree.
//   - Other specs are read in the job's time zone.
//   - Daylight saving follows Vixie cron. A fixed-time job (neither its minute
//     nor its hour field is a wildcard) whose local time does not exist on a
//     spring-forward day runs once, at the transition instant; one whose local
//     time happens twice on a fall-back day runs once, at the first occurrence.
//     A wildcard job follows real time: it runs at every real instant whose
//     local time matches, so "*/15 * * * *" runs every 15 real minutes across
//     both transitions. As in Vixie cron, a field is a wildcard when it starts
//     with "*": "0 */2 * * *", "30 * * * *" and @hourly are wildcard jobs;
//     "0-59 2 * * *" and "0 0,12 * * *" are fixed-time.
//   - The zone is assumed to change its UTC offset at most once within any
//     two days (true of every zone in the tz database since 1970).
//
// A Schedule is a handle (one word) on its interned definition: the jobs
// with the same spec and zone share one copy, which with 100,000 jobs of a
// few thousand distinct specs saves most of their size.
type Schedule struct{ h unique.Handle[def] }

// def is a Schedule's definition.
type def struct {
	kind  scheduleKind
	text  string            // the spec as parsed
	spec  cron.SpecSchedule // Location is UTC: robfig works on wall clock fields only
	fixed bool
	every int64 // seconds
	loc   *time.Location
}

func newSpec(text string, s cron.SpecSchedule, minuteStar, hourStar bool, loc *time.Location) Schedule {
	s.Location = time.UTC
	return Schedule{unique.Make(def{kind: kindSpec, text: text, spec: s, fixed: !minuteStar && !hourStar, loc: loc})}
}

// v is s's definition; the zero def for the zero Schedule.
func (s Schedule) v() def {
	if s.h == (unique.Handle[def]{}) {
		return def{}
	}
	return s.h.Value()
}

// String is the spec as parsed (trimmed; "@every" normalised).
func (s Schedule) String() string { return s.v().text }

// Location is the zone the schedule is read in.
func (s Schedule) Location() *time.Location {
	if loc := s.v().loc; loc != nil {
		return loc
	}
	return time.UTC
}

// FixedTime reports whether Vixie cron's fixed-time daylight-saving rule
// applies (a spec whose minute and hour fields are not wildcards).
func (s Schedule) FixedTime() bool { d := s.v(); return d.kind == kindSpec && d.fixed }

// Every is the period of an "@every" schedule, 0 for other kinds.
func (s Schedule) Every() time.Duration {
	if d := s.v(); d.kind == kindEvery {
		return time.Duration(d.every) * time.Second
	}
	return 0
}

// Next returns the first slot strictly after after, in UTC; the zero Time
// when there is none within about five years.
func (s Schedule) Next(after time.Time) time.Time { return s.v().next(after) }

func (s def) next(after time.Time) time.Time {
	a := after.Unix() // floor: a slot > a is > after, since slots are whole seconds
	switch s.kind {
	case kindEvery:
		return unix(floorDiv(a, s.every)*s.every + s.every)
	case kindSpec:
		return s.nextSpec(a)
	}
	return time.Time{}
}

// nextSpec scans matching wall-clock times (robfig on UTC fields: no zone
// trouble) from a lower bound, maps each to real instants in s.loc, and
// returns the least instant after a.
func (s def) nextSpec(a int64) time.Time {
	w := a + min(s.offset(a), s.offset(a+day)) // no candidate's wall time is earlier
	best, found := int64(0), false
	for range maxScan {
		next := s.spec.Next(time.Unix(w, 0).UTC())
		if next.IsZero() {
			break
		}
		w = next.Unix()
		inst, n, gap := s.resolve(w)
		if s.fixed {
			// Monotone in w: the first instant after a is the answer.
			t := gap
			if n > 0 {
				t = inst[0] // first occurrence of a repeated time
			}
			if t > a {
				return unix(t)
			}
			continue
		}
		// Wildcard: real instants only; a skipped wall time has none, a
		// repeated one has two.
		for _, t := range inst[:n] {
			if t > a && (!found || t < best) {
				best, found = t, true
			}
		}
		if n > 0 && inst[0] > a {
			break // later wall times only give later instants
		}
	}
	if !found {
		return time.Time{}
	}
	return unix(best)
}

// resolve maps wall time w (seconds, as if UTC) to its real instants in
// s.loc, ascending: n == 1 normally, 2 when the time repeats (fall back),
// 0 when it is skipped (spring forward), with gap the transition instant.
func (s def) resolve(w int64) (inst [2]int64, n int, gap int64) {
	before, after := s.offset(w-day), s.offset(w+day)
	for i, o := range [2]int64{before, after} {
		if i == 1 && o == before {
			break
		}
		if t := w - o; s.offset(t) == o {
			inst[n] = t
			n++
		}
	}
	if n == 2 && inst[1] < inst[0] {
		inst[0], inst[1] = inst[1], inst[0]
	}
	if n == 0 {
		start, _ := time.Unix(w-before, 0).In(s.loc).ZoneBounds()
		gap = start.Unix()
	}
	return inst, n, gap
}

// offset is s.loc's UTC offset in seconds at instant u.
func (s def) offset(u int64) int64 {
	_, off := time.Unix(u, 0).In(s.loc).Zone()
	return int64(off)
}

// Prev returns the latest slot at or before at, in UTC; the zero Time when
// there is none within about six years. Catch-up uses it to find the most
// recent missed slot.
func (s Schedule) Prev(at time.Time) time.Time { return s.v().prev(at) }

func (s def) prev(at time.Time) time.Time {
	if s.kind == 0 {
		return time.Time{}
	}
	a := at.Unix()
	if s.kind == kindEvery {
		return unix(floorDiv(a, s.every) * s.every)
	}
	for span := int64(1); span <= maxPrevSpan; span *= 2 {
		t := s.next(time.Unix(a-span, 0))
		if t.IsZero() || t.Unix() > a {
			continue
		}
		for {
			n := s.next(t)
			if n.IsZero() || n.Unix() > a {
				return t
			}
			t = n
		}
	}
	return time.Time{}
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Interval is the shortest gap between two slots, for the jitter bound:
// the period of "@every", else the shortest gap found over a year of slots
// from the start of 2025 (at most maxIntervalScan of them, enough for a
// per-second spec to show its gap at once and a sparse one over the year).
// 0 for the zero Schedule.
func (s Schedule) Interval() time.Duration { return s.v().interval() }

func (s def) interval() time.Duration {
	switch s.kind {
	case kindEvery:
		return time.Duration(s.every) * time.Second
	case kindSpec:
		t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		end := t.AddDate(1, 0, 0)
		var best time.Duration
		prev := s.next(t)
		for range maxIntervalScan {
			next := s.next(prev)
			if next.IsZero() || prev.IsZero() || next.After(end) {
				break
			}
			if gap := next.Sub(prev); best == 0 || gap < best {
				best = gap
			}
			if best == time.Second {
				break // slots are whole seconds: none can be closer
			}
			prev = next
		}
		return best
	}
	return 0
}

// maxIntervalScan bounds Interval's scan.
const maxIntervalScan = 20000
