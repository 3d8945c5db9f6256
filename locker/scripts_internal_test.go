package locker

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
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
		HistoryKey: "redcron:{j000123}:history", HistoryLen: 200, HistoryTTL: 24 * time.Hour, RunningKey: "redcron:{j000123}:running"}
	b.ReportAllocs()
	for b.Loop() {
		ls := c.lines("0123456789abcdef0123456789abcdef")
		_ = c.finishLine("0123456789abcdef0123456789abcdef", rec)
		_ = c.renewLine("0123456789abcdef0123456789abcdef")
		if len(ls.obtain) == 0 {
			b.Fatal("empty line")
		}
	}
}

// TestArgsLine: a line is "EVALSHA sha nkeys keys... names values...", the
// names those of the keys given, whether or not the script's previous line
// named the same keys, and a value for every argument the script reads, in
// the script's order, empty when not given; a line without arguments still
// sends every argument's place.
func TestArgsLine(t *testing.T) {
	s := newScript("return {A.token, A.ttl, A.fence, A.record}")
	// values is the values part of a line that sets the arguments given.
	values := func(given map[string]string) []any {
		v := make([]any, s.nargs)
		for i := range v {
			v[i] = ""
		}
		for name, val := range given {
			v[s.argAt[name]] = val
		}
		return v
	}
	for _, tc := range []struct {
		name string
		a    *args
		want []any
	}{
		{"keys and arguments", s.args().key("lease", "L").key("mark", "").key("meta", "M").arg("token", "T").argIf("record", ""),
			append([]any{"evalsha", s.sha, 2, "L", "M", "lease,meta"}, values(map[string]string{"token": "T"})...)},
		{"same keys again", s.args().key("lease", "L2").key("meta", "M2").arg("ttl", "5"),
			append([]any{"evalsha", s.sha, 2, "L2", "M2", "lease,meta"}, values(map[string]string{"ttl": "5"})...)},
		{"other keys", s.args().key("meta", "M").arg("fence", "7").arg("record", "R"),
			append([]any{"evalsha", s.sha, 1, "M", "meta"}, values(map[string]string{"fence": "7", "record": "R"})...)},
		{"no arguments", s.args().key("meta", "M"),
			append([]any{"evalsha", s.sha, 1, "M", "meta"}, values(nil)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.a.line()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got, want := int(s.longest.Load()), 6+s.nargs; got != want {
		t.Errorf("longest line: got %d, want %d", got, want)
	}
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"a key after an argument", func() { s.args().arg("token", "T").key("lease", "L") }},
		{"an argument the script does not read", func() { s.args().arg("nope", "x") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			tc.f()
		})
	}
}

// TestScriptsReadTheirArguments runs a script whose arguments are given in
// part against a real server: each argument given reads back as sent, each
// one not given as nil, whatever its place.
func TestScriptsReadTheirArguments(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	s := newScript(`return {A.token or "nil", A.record or "nil", A.fence or "nil", K.lease or "nil", K.meta or "nil"}`)
	ctx := t.Context()
	line := s.args().key("meta", "{j}:m").arg("record", `{"a":"b,c"}`).arg("fence", "0").line()
	got := redis.NewCmd(ctx, append([]any{"eval", s.src}, line[2:]...)...)
	if err := c.Process(ctx, got); err != nil {
		t.Fatal(err)
	}
	if want := `[nil {"a":"b,c"} 0 nil {j}:m]`; fmt.Sprint(got.Val()) != want {
		t.Errorf("got %v, want %v", got.Val(), want)
	}
}
