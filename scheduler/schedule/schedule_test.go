package schedule

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustSchedule(t testing.TB, spec, zone string) Schedule {
	t.Helper()
	s, err := Parse(spec, mustZone(t, zone))
	if err != nil {
		t.Fatalf("parse %q: %v", spec, err)
	}
	return s
}

func mustZone(t testing.TB, zone string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatalf("zone %q: %v", zone, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// slots returns the n slots after from.
func slots(s Schedule, from time.Time, n int) []time.Time {
	var out []time.Time
	for t := from; len(out) < n; {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func fmtSlots(ts []time.Time) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += " "
		}
		s += t.Format("2006-01-02T15:04:05Z")
	}
	return s
}

// Daylight saving in 2026: New York springs forward on Mar 8 at 02:00 EST
// (07:00Z) and falls back on Nov 1 at 02:00 EDT (06:00Z); Berlin springs
// forward on Mar 29 at 02:00 CET (01:00Z) and falls back on Oct 25 at 03:00
// CEST (01:00Z).
func TestScheduleSlots(t *testing.T) {
	tests := []struct {
		name, spec, zone, from string
		want                   []string
	}{
		{"ny spring fixed 02:30 runs once at the transition", "30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"ny spring fixed 6-field", "0 30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"ny spring two skipped times run once", "0,30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z"}},
		{"ny fall fixed 01:30 runs once (first occurrence)", "30 1 * * *", "America/New_York", "2026-10-31T00:00:00Z",
			[]string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"ny fall fixed 6-field with seconds", "15 30 1 * * *", "America/New_York", "2026-11-01T05:00:00Z",
			[]string{"2026-11-01T05:30:15Z", "2026-11-02T06:30:15Z"}},
		{"ny spring */15 follows real time", "*/15 * * * *", "America/New_York", "2026-03-08T06:30:00Z",
			[]string{"2026-03-08T06:45:00Z", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"}},
		{"ny fall */15 follows real time", "*/15 * * * *", "America/New_York", "2026-11-01T05:30:00Z",
			[]string{"2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z", "2026-11-01T06:15:00Z", "2026-11-01T06:30:00Z"}},
		{"ny spring 30 * every real hour", "30 * * * *", "America/New_York", "2026-03-08T06:00:00Z",
			[]string{"2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", "2026-03-08T08:30:00Z"}},
		{"ny fall 30 * every real hour", "30 * * * *", "America/New_York", "2026-11-01T05:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"}},
		{"ny spring 0 */2 is a wildcard: the missing 02:00 does not run", "0 */2 * * *", "America/New_York", "2026-03-08T04:00:00Z",
			[]string{"2026-03-08T05:00:00Z", "2026-03-08T08:00:00Z", "2026-03-08T10:00:00Z"}},
		{"ny spring @hourly", "@hourly", "America/New_York", "2026-03-08T05:30:00Z",
			[]string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
		{"ny fall @hourly", "@hourly", "America/New_York", "2026-11-01T04:30:00Z",
			[]string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}},
		{"ny @daily across spring", "@daily", "America/New_York", "2026-03-07T00:00:00Z",
			[]string{"2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}},
		{"berlin spring fixed 02:30", "30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin spring fixed 6-field", "0 30 2 * * *", "Europe/Berlin", "2026-03-28T00:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"berlin fall fixed 02:30 once", "30 2 * * *", "Europe/Berlin", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"berlin fall */20 real time", "*/20 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z",
			[]string{"2026-10-25T00:40:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:20:00Z"}},
		{"berlin spring 6-field every 10s wildcard", "*/10 * * * * *", "Europe/Berlin", "2026-03-29T00:59:40Z",
			[]string{"2026-03-29T00:59:50Z", "2026-03-29T01:00:00Z", "2026-03-29T01:00:10Z"}},
		{"berlin @daily", "@daily", "Europe/Berlin", "2026-10-24T00:00:00Z",
			[]string{"2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"}},
		{"utc 5-field", "5 4 * * *", "UTC", "2026-01-01T04:05:00Z",
			[]string{"2026-01-02T04:05:00Z", "2026-01-03T04:05:00Z"}},
		{"utc 6-field every second", "* * * * * *", "UTC", "2026-01-01T00:00:00.5Z",
			[]string{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"}},
		{"@every 90s epoch anchored", "@every 90s", "Europe/Berlin", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"}},
		{"@every 7s epoch anchored", "@every 7s", "UTC", "1970-01-01T00:00:20Z",
			[]string{"1970-01-01T00:00:21Z", "1970-01-01T00:00:28Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.spec, tt.zone)
			var want []time.Time
			for _, w := range tt.want {
				want = append(want, utc(w))
			}
			got := slots(s, utc(tt.from), len(want))
			if fmtSlots(got) != fmtSlots(want) {
				t.Errorf("Next from %s: got %s, want %s", tt.from, fmtSlots(got), fmtSlots(want))
			}
		})
	}
}

func TestScheduleFixedTime(t *testing.T) {
	tests := []struct {
		spec string
		want bool
	}{
		{"30 2 * * *", true},
		{"0 30 2 * * *", true},
		{"@daily", true},
		{"@weekly", true},
		{"0,30 1,2 * * *", true},
		{"*/15 * * * *", false},
		{"30 * * * *", false},
		{"* 2 * * *", false},
		{"@hourly", false},
		{"0-59 2 * * *", true}, // covers every minute, but does not start with *: fixed (Vixie)
		{"0 */2 * * *", false}, // starts with *: a wildcard (Vixie), though robfig marks it a list
		{"? 2 * * *", false},
		{"@every 1h", false},
	}
	for _, tt := range tests {
		if got := mustSchedule(t, tt.spec, "UTC").FixedTime(); got != tt.want {
			t.Errorf("FixedTime(%q): got %v, want %v", tt.spec, got, tt.want)
		}
	}
}

// TestEveryAnchoredAcrossReplicas: two replicas started at different moments
// compute the same slots.
func TestEveryAnchoredAcrossReplicas(t *testing.T) {
	for _, spec := range []string{"@every 1s", "@every 7s", "@every 1m30s", "@every 1h"} {
		s := mustSchedule(t, spec, "America/New_York")
		a := slots(s, utc("2026-05-01T10:00:00Z").Add(123*time.Millisecond), 5)
		b := slots(s, a[0].Add(-time.Nanosecond), 5)           // a replica that started later
		c := slots(s, a[0].Add(-s.Every()+time.Nanosecond), 5) // the earliest start that still sees a[0] first
		if fmtSlots(a) != fmtSlots(b) || fmtSlots(a) != fmtSlots(c) {
			t.Errorf("%s: replicas disagree: got %s and %s and %s", spec, fmtSlots(a), fmtSlots(b), fmtSlots(c))
		}
		for _, x := range a {
			if x.Unix()%int64(s.Every()/time.Second) != 0 {
				t.Errorf("%s: slot %v is not a multiple of the period since the epoch", spec, x)
			}
		}
	}
}

func TestSchedulePrev(t *testing.T) {
	tests := []struct {
		spec, zone, at, want string
	}{
		{"30 2 * * *", "America/New_York", "2026-03-08T08:00:00Z", "2026-03-08T07:00:00Z"},
		{"30 1 * * *", "America/New_York", "2026-11-01T06:45:00Z", "2026-11-01T05:30:00Z"},
		{"*/15 * * * *", "America/New_York", "2026-11-01T06:07:00Z", "2026-11-01T06:00:00Z"},
		{"* * * * * *", "UTC", "2026-01-01T00:00:07.9Z", "2026-01-01T00:00:07Z"},
		{"@every 90s", "UTC", "2026-01-01T00:02:59Z", "2026-01-01T00:01:30Z"},
		{"@every 90s", "UTC", "2026-01-01T00:03:00Z", "2026-01-01T00:03:00Z"},
		{"0 0 1 1 *", "UTC", "2026-06-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"0 0 29 2 *", "UTC", "2026-06-01T00:00:00Z", "2024-02-29T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.spec+"@"+tt.at, func(t *testing.T) {
			s := mustSchedule(t, tt.spec, tt.zone)
			if got := s.Prev(utc(tt.at)); !got.Equal(utc(tt.want)) {
				t.Errorf("Prev(%s): got %v, want %s", tt.at, got, tt.want)
			}
		})
	}
}

// TestScheduleConsistency checks, around both transitions in two zones, that
// Next is strictly increasing, whole-second and UTC, that Prev(Next(t)) is
// Next(t), and that Next(Prev(t)) is after t.
func TestScheduleConsistency(t *testing.T) {
	specs := []string{"30 2 * * *", "30 1 * * *", "0,30 2 * * *", "*/15 * * * *", "30 * * * *", "@hourly", "@daily", "*/7 * * * * *", "0 30 2 * * *", "@every 45s"}
	windows := []struct{ zone, from string }{
		{"America/New_York", "2026-03-07T20:00:00Z"},
		{"America/New_York", "2026-10-31T20:00:00Z"},
		{"Europe/Berlin", "2026-03-28T20:00:00Z"},
		{"Europe/Berlin", "2026-10-24T20:00:00Z"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, w := range windows {
		for _, spec := range specs {
			t.Run(fmt.Sprintf("%s %s %s", w.zone, w.from, spec), func(t *testing.T) {
				s := mustSchedule(t, spec, w.zone)
				from := utc(w.from)
				prev := from
				for _, x := range slots(s, from, 200) {
					if !x.After(prev) || x.Nanosecond() != 0 || x.Location() != time.UTC {
						t.Fatalf("slot %v after %v: want strictly later, whole second, UTC", x, prev)
					}
					if got := s.Prev(x); !got.Equal(x) {
						t.Fatalf("Prev(%v): got %v, want the slot itself", x, got)
					}
					prev = x
				}
				for range 50 {
					at := from.Add(time.Duration(rng.Int64N(int64(30 * time.Hour))))
					p := s.Prev(at)
					if p.After(at) {
						t.Fatalf("Prev(%v) = %v: want <= at", at, p)
					}
					if n := s.Next(p); !n.After(at) {
						t.Fatalf("Next(Prev(%v)) = %v: want > at (a slot between was missed)", at, n)
					}
				}
			})
		}
	}
}

// TestRobfigDSTDiffers documents why we do not use robfig's Next directly:
// it skips the spring-forward run of a fixed-time job and runs the
// fall-back one twice.
func TestRobfigDSTDiffers(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	spring, _ := specParser.Parse("30 2 * * *")
	spring.(*cron.SpecSchedule).Location = ny
	got := spring.Next(utc("2026-03-08T00:00:00Z")).UTC()
	if ours := mustSchedule(t, "30 2 * * *", "America/New_York").Next(utc("2026-03-08T00:00:00Z")); got.Equal(ours) {
		t.Errorf("robfig and ours agree on the spring-forward slot %v; the DST rule is not exercised", got)
	}
}

func TestScheduleZeroAndNil(t *testing.T) {
	var zero Schedule
	if got := zero.Next(time.Now()); !got.IsZero() {
		t.Errorf("zero Schedule Next: got %v, want zero", got)
	}
	if got := zero.Prev(time.Now()); !got.IsZero() {
		t.Errorf("zero Schedule Prev: got %v, want zero", got)
	}
}

func BenchmarkScheduleNext(b *testing.B) {
	sch := mustSchedule(b, "* * * * * *", "UTC")
	t := utc("2026-01-01T00:00:00Z")
	for b.Loop() {
		t = sch.Next(t)
	}
}
