package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
)

// TestRunLoggerFields checks that every line an attempt writes through
// r.Logger carries the run's job, slot and fence and its own attempt
// number, and that an attempt's field does not leak into the run's logger.
func TestRunLoggerFields(t *testing.T) {
	var buf bytes.Buffer
	slot := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	base := zerolog.New(&buf).With().Str("replica", "r1").Logger()
	runLog := base.Hook(&runFields{job: "report", slot: slot, fence: 42})
	clk := newFakeClock(time.Unix(1000, 0))
	f := Retry(clk, jobs.Retry{Attempts: 2}, nil)(func(_ context.Context, r jobs.Run) error {
		r.Logger.Info().Str("step", "user").Msg("job line")
		child := r.Logger.With().Str("extra", "x").Logger()
		child.Info().Msg("child line")
		if r.Attempt == 1 {
			return errors.New("fail")
		}
		return nil
	})
	if err := f(context.Background(), jobs.Run{Logger: runLog}); err != nil {
		t.Fatalf("got %v, want nil after the 2nd attempt", err)
	}
	runLog.Info().Msg("run")

	type line struct {
		Message string `json:"message"`
		Replica string `json:"replica"`
		Job     string `json:"job"`
		Slot    string `json:"slot"`
		Fence   int64  `json:"fence"`
		Attempt *int   `json:"attempt"`
	}
	var got []line
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var l line
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	wantAttempts := []int{1, 1, 1, 2, 2, 0} // 0: none (the run's own line)
	if len(got) != len(wantAttempts) {
		t.Fatalf("got %d lines, want %d: %+v", len(got), len(wantAttempts), got)
	}
	for i, l := range got {
		if l.Replica != "r1" || l.Job != "report" || l.Slot != slot.Format(time.RFC3339) || l.Fence != 42 {
			t.Errorf("line %d (%q): got replica %q job %q slot %q fence %d, want r1 report %s 42",
				i, l.Message, l.Replica, l.Job, l.Slot, l.Fence, slot.Format(time.RFC3339))
		}
		switch want := wantAttempts[i]; {
		case want == 0 && l.Attempt != nil:
			t.Errorf("line %d (%q): got attempt %d, want none", i, l.Message, *l.Attempt)
		case want != 0 && l.Attempt == nil:
			t.Errorf("line %d (%q): got no attempt, want %d", i, l.Message, want)
		case want != 0 && *l.Attempt != want:
			t.Errorf("line %d (%q): got attempt %d, want %d", i, l.Message, *l.Attempt, want)
		}
	}
}
