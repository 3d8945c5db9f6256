package jobs

import (
	"net/http"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cap    int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"abc", "def"}, "abcdef"},
		{"keeps the end", 5, []string{"abc", "defgh"}, "…defgh"},
		{"one big write", 3, []string{"abcdefg"}, "…efg"},
		{"no cap", 0, []string{"abc"}, "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := NewTail(tc.cap)
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := tl.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	var nilTail *Tail
	if _, err := nilTail.Write([]byte("x")); err != nil || nilTail.String() != "" {
		t.Errorf("a nil Tail must accept writes and read empty")
	}
}

// TestOutputTail: a command's stdout and stderr, and an HTTP response's
// body, end in the run's Output tail.
func TestOutputTail(t *testing.T) {
	tl := NewTail(64)
	j := commandJob("sh", "-c", `echo oops >&2; i=0; while [ $i -lt 20 ]; do echo "line $i"; i=$((i+1)); done`)
	log, _ := testLogger(t)
	if err := j.Run(t.Context(), Run{Logger: log, Output: tl}); err != nil {
		t.Fatal(err)
	}
	// stdout and stderr are read concurrently: where "oops" lands in the
	// tail is not fixed, but the end of the output is.
	if got := tl.String(); !strings.HasPrefix(got, "…") || !strings.Contains(got, "line 19\n") || len(got) > 64+len("…") {
		t.Errorf("command tail: got %q, want the last 64 bytes, with line 19", got)
	}
	s := server(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("pong")) })
	ht := NewTail(64)
	if err := httpJob(s.URL).Run(t.Context(), Run{Output: ht}); err != nil {
		t.Fatal(err)
	}
	if got := ht.String(); got != "pong" {
		t.Errorf("http tail: got %q, want pong", got)
	}
}
