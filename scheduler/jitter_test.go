package scheduler

import (
	"testing"
	"time"
)

func TestJitterDeterministicAndBounded(t *testing.T) {
	slot := utc("2026-05-01T10:00:00Z")
	tests := []struct {
		name string
		max  time.Duration
	}{
		{"zero", 0}, {"negative", -time.Second}, {"1ns", time.Nanosecond}, {"500ms", 500 * time.Millisecond}, {"1h", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 100 {
				s := slot.Add(time.Duration(i) * time.Second)
				got := Jitter("backup", s, tt.max)
				if again := Jitter("backup", s, tt.max); again != got {
					t.Fatalf("Jitter not deterministic: got %v then %v", got, again)
				}
				if tt.max <= 0 && got != 0 {
					t.Fatalf("Jitter with max %v: got %v, want 0", tt.max, got)
				}
				if tt.max > 0 && (got < 0 || got >= tt.max) {
					t.Fatalf("Jitter: got %v, want in [0, %v)", got, tt.max)
				}
			}
		})
	}
}

func TestJitterSpreads(t *testing.T) {
	slot := utc("2026-05-01T10:00:00Z")
	seen := map[time.Duration]bool{}
	for i := range 50 {
		seen[Jitter(string(rune('a'+i%26))+"job", slot.Add(time.Duration(i)*time.Second), time.Second)] = true
	}
	if len(seen) < 45 {
		t.Errorf("distinct jitters over 50 (job, slot) pairs: got %d, want >= 45", len(seen))
	}
	if a, b := Jitter("a", slot, time.Hour), Jitter("b", slot, time.Hour); a == b {
		t.Errorf("jobs a and b share jitter %v", a)
	}
}
