package jobs

import (
	"net/http"
	"testing"
)

// TestManualRunIsMarked: a manual run says so to the job itself:
// REDCRON_MANUAL=1 for a command, X-Redcron-Manual: 1 for an HTTP request;
// a scheduled run carries neither.
func TestManualRunIsMarked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		manual bool
		env    string
		header string
	}{
		{"scheduled", false, "[]", ""},
		{"manual", true, "[1]", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := commandJob("sh", "-c", `echo "[$REDCRON_MANUAL]"`)
			log, buf := testLogger(t)
			if err := j.Run(t.Context(), Run{Job: "j", Manual: tc.manual, Logger: log}); err != nil {
				t.Fatal(err)
			}
			if got := outputOf(t, buf.String(), "stdout"); len(got) != 1 || got[0] != tc.env {
				t.Errorf("command: REDCRON_MANUAL printed %q, want %q", got, tc.env)
			}

			got := make(chan string, 1)
			s := server(t, func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get("X-Redcron-Manual")
			})
			if err := httpJob(s.URL).Run(t.Context(), Run{Job: "j", Manual: tc.manual}); err != nil {
				t.Fatal(err)
			}
			if h := <-got; h != tc.header {
				t.Errorf("http: X-Redcron-Manual %q, want %q", h, tc.header)
			}
		})
	}
}
