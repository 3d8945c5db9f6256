package locker

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkClaimLines builds the command lines of a slot claim as the
// scheduler sends it (mark, history, running index, pause key, records):
// the claim's and the finish's, which a replica builds for every firing it
// claims, and the renewal's, which it builds for a run that reaches its
// first renewal. Run with
//
//	go test -run '^$' -bench ClaimLines -benchmem ./locker/
func BenchmarkClaimLines(b *testing.B) {
	slot := time.Unix(1_800_000_000, 0)
	rec := `{"job":"j000123","slot":"2027-01-15T08:00:00Z","outcome":"skipped","reason":"late"}`
	c := Claim{Key: "redcron:{j000123}:lease", MetaKey: "redcron:{j000123}:meta", TTL: 30 * time.Second,
		MarkKey: "redcron:{j000123}:slot:1800000000", MarkTTL: time.Minute, Retention: time.Minute,
		Running: `{"job":"j000123","slot":"2027-01-15T08:00:00Z","outcome":"running","replica":"r0"}`,
		Records: Records{Busy: rec, Paused: rec, Late: rec, Aborted: rec},
		Slot:    slot, FirstSeen: slot.Add(-time.Hour), NotBefore: slot.Add(-50 * time.Millisecond), Due: slot,
		NotAfter: slot.Add(time.Minute), MarkFloor: time.Minute, PauseKey: "redcron:{j000123}:paused",
		HistoryKey: "redcron:{j000123}:history", HistoryLen: 200, HistoryTTL: 24 * time.Hour, RunningKey: "redcron:{j000123}:running",
		RingKey: "redcron:{j000123}:ring"}
	b.ReportAllocs()
	for b.Loop() {
		ls := c.lines("0123456789abcdef0123456789abcdef", true)
		_ = c.finishLine("0123456789abcdef0123456789abcdef", rec, 0)
		_ = c.renewLine("0123456789abcdef0123456789abcdef")
		if len(ls.obtain) == 0 {
			b.Fatal("empty line")
		}
	}
}

// TestArgsLine: a line is "EVALSHA sha nkeys keys... names pairs...", the
// names those of the keys given, whether or not the script's previous line
// named the same keys; a line without arguments still names its keys.
func TestArgsLine(t *testing.T) {
	s := newScript("", "return 1")
	for _, tc := range []struct {
		name string
		a    *args
		want []any
	}{
		{"keys and arguments", s.args().key("lease", "L").key("mark", "").key("meta", "M").arg("token", "T").argIf("record", ""),
			[]any{"evalsha", s.sha, 2, "L", "M", "lease,meta", "token", "T"}},
		{"same keys again", s.args().key("lease", "L2").key("meta", "M2").arg("ttl", "5"),
			[]any{"evalsha", s.sha, 2, "L2", "M2", "lease,meta", "ttl", "5"}},
		{"other keys", s.args().key("meta", "M").arg("fence", "7"),
			[]any{"evalsha", s.sha, 1, "M", "meta", "fence", "7"}},
		{"no arguments", s.args().key("meta", "M"),
			[]any{"evalsha", s.sha, 1, "M", "meta"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.a.line()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := int(s.longest.Load()), 8; got != want {
		t.Errorf("longest line: got %d, want %d", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("a key after an argument: got no panic, want one")
		}
	}()
	s.args().arg("token", "T").key("lease", "L")
}

// TestRingSpan: prelude.lua's RING is RingSpan in seconds, the span that
// the recorder relies on when it does not send a skip Redis would call
// late.
func TestRingSpan(t *testing.T) {
	want := fmt.Sprintf("\nlocal RING = %d\n", int(RingSpan/time.Second))
	if !strings.Contains(preludeLua, want) {
		t.Errorf("prelude.lua: got no line %q, want RING to be RingSpan (%v)", strings.TrimSpace(want), RingSpan)
	}
}
