package scheduler

import (
	"testing"
	"time"

	"github.com/redcron/redcron/scheduler/schedule"
)

func mustSchedule(t *testing.T, spec, zone string) schedule.Schedule {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	s, err := schedule.Parse(spec, loc)
	if err != nil {
		t.Fatalf("parse %q: %v", spec, err)
	}
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestDecideCatchUp(t *testing.T) {
	every := mustSchedule(t, "@every 10s", "UTC")
	hourly := mustSchedule(t, "@hourly", "UTC")
	z := time.Time{}
	tests := []struct {
		name       string
		sched      schedule.Schedule
		last, now  string
		window     time.Duration
		wantSlot   string // "" for none
		wantSkip   int
		wantOldest string
	}{
		{"on time", every, "2026-01-01T00:00:00Z", "2026-01-01T00:00:10.003Z", time.Minute, "2026-01-01T00:00:10Z", 0, ""},
		{"nothing new", every, "2026-01-01T00:00:10Z", "2026-01-01T00:00:15Z", time.Minute, "", 0, ""},
		{"outage, most recent in window", every, "2026-01-01T00:00:00Z", "2026-01-01T00:00:45Z", time.Minute, "2026-01-01T00:00:40Z", 3, "2026-01-01T00:00:10Z"},
		{"outage beyond window", every, "2026-01-01T00:00:00Z", "2026-01-01T00:00:45Z", 5 * time.Second, "", 4, "2026-01-01T00:00:10Z"},
		{"window zero never catches up", every, "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", 0, "", 1, "2026-01-01T00:00:10Z"},
		{"start, recent slot in window", hourly, "", "2026-01-01T10:00:30Z", time.Minute, "2026-01-01T10:00:00Z", 0, ""},
		{"start, slot too old: not counted", hourly, "", "2026-01-01T10:30:00Z", time.Minute, "", 1, "2026-01-01T10:00:00Z"},
		{"age equal to window is too old", hourly, "2026-01-01T09:00:00Z", "2026-01-01T10:01:00Z", time.Minute, "", 1, "2026-01-01T10:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := z
			if tt.last != "" {
				last = utc(tt.last)
			}
			now := utc(tt.now)
			got := decideCatchUp(tt.sched, last, now, tt.sched.Prev(now), tt.window)
			want := z
			if tt.wantSlot != "" {
				want = utc(tt.wantSlot)
			}
			if !got.Slot.Equal(want) {
				t.Errorf("slot: got %v, want %v", got.Slot, want)
			}
			if got.Skipped != tt.wantSkip {
				t.Errorf("skipped: got %d, want %d", got.Skipped, tt.wantSkip)
			}
			if tt.wantOldest != "" && !got.Oldest.Equal(utc(tt.wantOldest)) {
				t.Errorf("oldest skipped: got %v, want %s", got.Oldest, tt.wantOldest)
			}
		})
	}
}

func TestDecideCatchUpCapsTheCount(t *testing.T) {
	s := mustSchedule(t, "* * * * * *", "UTC")
	now := utc("2026-01-02T00:00:00Z")
	got := decideCatchUp(s, utc("2026-01-01T00:00:00Z"), now, s.Prev(now), time.Minute)
	if !got.Capped || got.Skipped != maxSkipCount {
		t.Errorf("a day of missed seconds: got skipped %d capped %v, want %d capped true", got.Skipped, got.Capped, maxSkipCount)
	}
	if !got.Slot.Equal(now) {
		t.Errorf("slot: got %v, want %v", got.Slot, now)
	}
}
