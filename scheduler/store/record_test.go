package store

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// jsonEncode is Encode as encoding/json writes it: the reference that the
// hand-written encoder must match byte for byte.
func jsonEncode(r Record) string {
	if len(r.Error) > MaxErrorLen {
		r.Error = strings.ToValidUTF8(r.Error[:MaxErrorLen], "") + "…"
	}
	r.Slot = r.Slot.UTC()
	if !r.Started.IsZero() {
		r.Started = r.Started.UTC().Truncate(time.Millisecond)
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	slot := time.Date(2026, 3, 29, 1, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		r    Record
	}{
		{"running", Record{Job: "backup", Slot: slot, Outcome: OutcomeRunning, Replica: "r1", Started: slot.Add(1234567 * time.Microsecond)}},
		{"skip", Record{Job: "a.b-c_d", Slot: slot, Outcome: OutcomeSkipped, Reason: ReasonPaused}},
		{"zero slot", Record{}},
		{"everything", Record{Job: "j", Slot: slot, Outcome: OutcomeError, Reason: "x", Replica: "host-12", Fence: 42, Attempts: 3,
			Started: slot.Add(time.Second), DurationMS: 1500, Manual: true, Error: "exit status 1", Output: "line 1\nline 2\n"}},
		{"escapes", Record{Job: "j", Slot: slot, Outcome: OutcomeError,
			Error:  "quote \" backslash \\ <tag> & \t\r\n\b\f \x00\x01\x1f del\x7f",
			Output: "utf-8 é ✓ 😀, invalid \xff\xfe, separators \u2028 \u2029, cut \xe2\x9c"}},
		{"long error", Record{Job: "j", Slot: slot, Outcome: OutcomeError, Error: strings.Repeat("é", MaxErrorLen)}},
		{"negative fence", Record{Job: "j", Slot: slot, Outcome: OutcomeOK, Fence: -1, DurationMS: -5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tt.r.Encode(), jsonEncode(tt.r); got != want {
				t.Errorf("Encode:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("backup", "r1", "boom", "out\n", int64(7), int64(1700000000), int64(123456789), true)
	f.Add("<&>", "\u2028", "\xff", "\x00", int64(-1), int64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, job, replica, errText, output string, fence, slot, startedNS int64, manual bool) {
		r := Record{Job: job, Slot: time.Unix(slot%(1<<35), 0), Outcome: OutcomeError, Replica: replica, Fence: fence,
			Started: time.Unix(0, startedNS), DurationMS: fence / 3, Manual: manual, Error: errText, Output: output}
		if got, want := r.Encode(), jsonEncode(r); got != want {
			t.Errorf("Encode:\n got %s\nwant %s", got, want)
		}
		if _, err := ParseRecord(r.Encode()); err != nil {
			t.Fatalf("ParseRecord(Encode()): %v", err)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	r := Record{Job: "backup", Slot: time.Unix(1700000000, 0), Outcome: OutcomeRunning, Replica: "host-1234", Started: time.Now()}
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			_ = r.Encode()
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			_ = jsonEncode(r)
		}
	})
}
