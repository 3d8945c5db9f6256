package schedule

import (
	"errors"
	"testing"
	"time"
)

func TestParseAccepts(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		spec  string
		loc   *time.Location
		want  time.Time // next slot after from
		every time.Duration
	}{
		{"*/5 * * * *", nil, from.Add(5 * time.Minute), 0},
		{"*/10 * * * * *", nil, from.Add(10 * time.Second), 0},
		{"0 3 * * *", paris, time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC), 0}, // 03:00 CET
		{"@hourly", nil, from.Add(time.Hour), 0},
		{"@daily", paris, time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC), 0},
		{"  @every 90s ", nil, from.Add(90 * time.Second), 90 * time.Second},
		{"@every 1s", nil, from.Add(time.Second), time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec, tt.loc)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.spec, err)
			}
			if got := s.Every(); got != tt.every {
				t.Errorf("Every() = %v, want %v", got, tt.every)
			}
			if got := s.Next(from); !got.Equal(tt.want) {
				t.Errorf("Next(%s) = %s, want %s", from, got, tt.want)
			}
		})
	}
}

func TestParseDefaultsToUTCNotLocal(t *testing.T) {
	s, err := Parse("0 3 * * *", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Location(); got != time.UTC {
		t.Errorf("Location = %v, want UTC", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "* * * *", "* * * * * * *", "61 * * * *", "* 25 * * *", "0 0 30 2 *",
		"@every", "@every -5s", "@every 0s", "@every 500ms", "@every 1.5s", "@every soon",
		"@reboot", "@sometimes", "CRON_TZ=Europe/Paris 0 3 * * *", "TZ=UTC * * * * *",
		"*/0 * * * *", "5-1 * * * *", "a b c d e",
	} {
		t.Run(spec, func(t *testing.T) {
			s, err := Parse(spec, nil)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", spec, s)
			}
			if !errors.Is(err, ErrBadSchedule) {
				t.Errorf("errors.Is(%v, ErrBadSchedule) = false, want true", err)
			}
		})
	}
}

func TestInterval(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want time.Duration
	}{
		{"@every 90s", 90 * time.Second},
		{"* * * * * *", time.Second},
		{"*/20 * * * * *", 20 * time.Second},
		{"0 0 1,2 * *", 24 * time.Hour},
		{"0 0,12 * * *", 12 * time.Hour},
		{"@weekly", 7 * 24 * time.Hour},
	} {
		s, err := Parse(tt.spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Interval(); got != tt.want {
			t.Errorf("Interval(%q): got %v, want %v", tt.spec, got, tt.want)
		}
	}
}

// FuzzParse checks that Parse never panics, that its errors wrap
// ErrBadSchedule, and that what it accepts has slots, at least a second
// apart for @every.
func FuzzParse(f *testing.F) {
	f.Add("*/5 * * * *")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := Parse(spec, time.UTC)
		if err != nil {
			if !errors.Is(err, ErrBadSchedule) {
				t.Fatalf("error %v does not wrap ErrBadSchedule", err)
			}
			return
		}
		if e := s.Every(); e != 0 && (e < time.Second || e%time.Second != 0) {
			t.Fatalf("accepted @every %s", e)
		}
		if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			t.Fatalf("accepted %q, which never fires", spec)
		}
	})
}
