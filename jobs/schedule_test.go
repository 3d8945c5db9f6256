package jobs

import (
	"errors"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func TestParseScheduleAccepts(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		spec string
		loc  *time.Location
		want time.Time // next fire after from
	}{
		{"*/5 * * * *", nil, from.Add(5 * time.Minute)},
		{"*/10 * * * * *", nil, from.Add(10 * time.Second)},
		{"0 3 * * *", paris, time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)}, // 03:00 CET
		{"@hourly", nil, from.Add(time.Hour)},
		{"@daily", paris, time.Date(2026, 1, 1, 23, 0, 0, 0, time.UTC)},
		{"  @every 90s ", nil, time.Time{}},
		{"@every 1s", nil, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := ParseSchedule(tt.spec, tt.loc)
			if err != nil {
				t.Fatalf("ParseSchedule(%q): %v", tt.spec, err)
			}
			if tt.want.IsZero() {
				if _, ok := s.(cron.ConstantDelaySchedule); !ok {
					t.Fatalf("got %T, want cron.ConstantDelaySchedule", s)
				}
				return
			}
			if got := s.Next(from); !got.Equal(tt.want) {
				t.Errorf("Next(%s) = %s, want %s", from, got, tt.want)
			}
		})
	}
}

func TestParseScheduleDefaultsToUTCNotLocal(t *testing.T) {
	s, err := ParseSchedule("0 3 * * *", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.(*cron.SpecSchedule).Location; got != time.UTC {
		t.Errorf("Location = %v, want UTC", got)
	}
}

func TestParseScheduleRefuses(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "* * * *", "* * * * * * *", "61 * * * *", "* 25 * * *", "0 0 30 2 *",
		"@every", "@every -5s", "@every 0s", "@every 500ms", "@every 1.5s", "@every soon",
		"@reboot", "@sometimes", "CRON_TZ=Europe/Paris 0 3 * * *", "TZ=UTC * * * * *",
		"*/0 * * * *", "5-1 * * * *", "a b c d e",
	} {
		t.Run(spec, func(t *testing.T) {
			s, err := ParseSchedule(spec, nil)
			if err == nil {
				t.Fatalf("ParseSchedule(%q) = %v, want an error", spec, s)
			}
			if !errors.Is(err, ErrBadSchedule) {
				t.Errorf("errors.Is(%v, ErrBadSchedule) = false, want true", err)
			}
		})
	}
}
