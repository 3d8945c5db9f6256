package jobs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// server starts an httptest server on 127.0.0.1, closed at cleanup.
func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func httpJob(url string) *Job {
	return &Job{Name: "web", Kind: KindHTTP, HTTP: &HTTPSpec{Method: "GET", URL: url, Timeout: 5 * time.Second}}
}

func TestHTTPSendsRequestAndHeaders(t *testing.T) {
	type seen struct {
		method, body, host string
		header             http.Header
	}
	got := make(chan seen, 1)
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, string(b), r.Host, r.Header.Clone()}
		w.WriteHeader(http.StatusNoContent)
	})
	j := httpJob(s.URL + "/hook")
	j.HTTP.Method = "POST"
	j.HTTP.Body = `{"ok":true}`
	j.HTTP.Headers = map[string]string{"Content-Type": "application/json", "Host": "example.test"}
	slot := time.Date(2026, 11, 25, 10, 0, 5, 0, time.FixedZone("X", 3600))
	if err := j.Run(t.Context(), Run{Slot: slot, Fence: 7, Attempt: 2, Replica: "r2"}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r := <-got
	checks := []struct{ name, got, want string }{
		{"method", r.method, "POST"},
		{"body", r.body, `{"ok":true}`},
		{"Host", r.host, "example.test"},
		{"Content-Type", r.header.Get("Content-Type"), "application/json"},
		{"X-Redcron-Job", r.header.Get("X-Redcron-Job"), "web"},
		{"X-Redcron-Slot", r.header.Get("X-Redcron-Slot"), "2026-11-25T09:00:05Z"},
		{"X-Redcron-Fence", r.header.Get("X-Redcron-Fence"), "7"},
		{"X-Redcron-Replica", r.header.Get("X-Redcron-Replica"), "r2"},
		{"X-Redcron-Attempt", r.header.Get("X-Redcron-Attempt"), "2"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		expect []int
		ok     bool
	}{
		{"200 is a default success", 200, nil, true},
		{"204 is a default success", 204, nil, true},
		{"500 fails by default", 500, nil, false},
		{"302 fails by default", 404, nil, false},
		{"500 expected", 500, []int{500}, true},
		{"200 not in the list", 200, []int{201, 202}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, strings.Repeat("b", 100<<10)) // more than the read cap
			})
			j := httpJob(s.URL)
			j.HTTP.Expect = tt.expect
			err := j.Run(t.Context(), Run{})
			if tt.ok {
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
				return
			}
			var se *StatusError
			if !errors.As(err, &se) || !errors.Is(err, ErrHTTPStatus) || se.Code != tt.status {
				t.Fatalf("Run = %v, want a *StatusError with code %d", err, tt.status)
			}
			if len(se.Body) > 512 {
				t.Errorf("StatusError.Body has %d bytes, want at most 512", len(se.Body))
			}
		})
	}
}

// slowServer answers only when the client gives up or the test ends.
func slowServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); s.Close() })
	return s
}

func TestHTTPTimeout(t *testing.T) {
	j := httpJob(slowServer(t).URL)
	j.HTTP.Timeout = 100 * time.Millisecond
	start := time.Now()
	err := j.Run(t.Context(), Run{})
	if !errors.Is(err, ErrHTTPRequest) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want ErrHTTPRequest and context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s, want about the 100ms timeout", took)
	}
}

func TestHTTPCancelKeepsCause(t *testing.T) {
	errLease := errors.New("lease lost (test)")
	j := httpJob(slowServer(t).URL)
	ctx, cancel := context.WithCancelCause(t.Context())
	time.AfterFunc(50*time.Millisecond, func() { cancel(errLease) })
	err := j.Run(ctx, Run{})
	if !errors.Is(err, errLease) || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrHTTPRequest) {
		t.Errorf("Run = %v, want the cause, context.Canceled and ErrHTTPRequest", err)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close()
	if err := httpJob(url).Run(t.Context(), Run{}); !errors.Is(err, ErrHTTPRequest) {
		t.Errorf("Run = %v, want ErrHTTPRequest", err)
	}
}
