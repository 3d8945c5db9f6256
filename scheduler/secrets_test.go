package scheduler

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// lockedBuffer is a strings.Builder safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecretsRedactedFromRecords: a job whose error and output carry a
// secret (whole, and cut at the start of the output's tail) leaves it in
// no record of its history, in no notification body and not in the
// scheduler's "run" log line; each shows the secret's ${VAR} instead.
func TestSecretsRedactedFromRecords(t *testing.T) {
	t.Parallel()
	const secret = "tok-0123456789abcdef"
	srv := redistest.Start(t, redistest.Options{})
	var mu sync.Mutex
	var bodies []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)

	jobs.Register("secrets.leaky", func(_ context.Context, r jobs.Run, _ struct{}) error {
		// The tail keeps the last 64 bytes: the first secret is cut there,
		// 9 of its bytes left.
		fmt.Fprintf(r.Output, "%s%s, and then a long stretch of text: %s", strings.Repeat("x", 100), secret, secret)
		return fmt.Errorf("GET \"https://api.example.com/?token=%s\": 401", secret)
	})
	sec := jobs.NewSecrets()
	sec.Add(secret, "${API_TOKEN}")
	js := []*jobs.Job{testJob(t, "leaky", "* * * * * *", "secrets.leaky", func(j *jobs.Job) {
		j.OutputTail = 64
		j.Notify = &jobs.Notify{On: []string{jobs.NotifyFailure}, Webhook: recv.URL, Timeout: time.Second}
	})}
	logs := &lockedBuffer{}
	logger := zerolog.New(logs)
	s, err := New(js, newLocker(t, newClient(t, srv)), Options{Replica: "r1", Logger: &logger, Secrets: sec})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	var recs []store.Record
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
		recs, err = s.Store().History(hctx, "leaky", store.Page{Limit: 10})
		hcancel()
		if err == nil && len(recs) >= 2 && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15s: %d records (%v), %d notifications; want 2 of each", len(recs), err, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range recs {
		if r.Outcome != store.OutcomeError {
			continue
		}
		if want := `GET "https://api.example.com/?token=${API_TOKEN}": 401`; r.Error != want {
			t.Errorf("record error = %q, want %q", r.Error, want)
		}
		if want := "…${API_TOKEN}, and then a long stretch of text: ${API_TOKEN}"; r.Output != want {
			t.Errorf("record output = %q, want %q", r.Output, want)
		}
	}
	mu.Lock()
	texts := append([]string{logs.String()}, bodies...)
	mu.Unlock()
	for i, text := range texts {
		what := "the log"
		if i > 0 {
			what = fmt.Sprintf("notification %d", i)
		}
		for _, leak := range []string{secret, secret[4:], secret[:len(secret)-4]} {
			if strings.Contains(text, leak) {
				t.Errorf("%s holds %q:\n%s", what, leak, text)
			}
		}
		if !strings.Contains(text, "${API_TOKEN}") {
			t.Errorf("%s: want ${API_TOKEN} in place of the secret:\n%s", what, text)
		}
	}
}
