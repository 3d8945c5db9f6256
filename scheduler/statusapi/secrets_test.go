package statusapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// TestReadAuth: with ReadAuth, every read needs the bearer token (the
// page, static, does not); without it, reads are open.
func TestReadAuth(t *testing.T) {
	cfg, err := jobs.Parse("jobs.yaml", []byte(config), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t, redistest.Options{})
	st := store.New(mustLocker(t, rs.Client(t), locker.Options{}), "")
	reads := []string{"/api/status", "/api/jobs", "/api/jobs/backup", "/api/jobs/backup/history", "/api/replicas"}
	tests := []struct {
		name            string
		readAuth        bool
		token, sent     string
		wantAPI, wantUI int
	}{
		{"open reads", false, "s3cret", "", http.StatusOK, http.StatusOK},
		{"no token sent", true, "s3cret", "", http.StatusUnauthorized, http.StatusOK},
		{"wrong token", true, "s3cret", "guess", http.StatusUnauthorized, http.StatusOK},
		{"right token", true, "s3cret", "s3cret", http.StatusOK, http.StatusOK},
		{"read auth without a token", true, "", "x", http.StatusForbidden, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(New(Config{Source: src{cfg.Jobs, st, time.Now()}, Token: tt.token, ReadAuth: tt.readAuth, Replica: "r1"}))
			t.Cleanup(srv.Close)
			for _, path := range reads {
				if code, body := do(t, "GET", srv.URL+path, tt.sent); code != tt.wantAPI {
					t.Errorf("GET %s: got %d, want %d: %s", path, code, tt.wantAPI, body)
				}
			}
			if code, _ := do(t, "GET", srv.URL+"/", ""); code != tt.wantUI {
				t.Errorf("GET /: got %d, want %d", code, tt.wantUI)
			}
		})
	}
}

// TestLoopbackOnly: a loopback-bound server answers to loopback names
// only, so a DNS-rebound page of another site cannot read it.
func TestLoopbackOnly(t *testing.T) {
	h := LoopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }), "redcron.internal")
	tests := []struct {
		host string
		want int
	}{
		{"localhost", http.StatusOK},
		{"localhost:9090", http.StatusOK},
		{"LOCALHOST:9090", http.StatusOK},
		{"app.localhost:9090", http.StatusOK},
		{"127.0.0.1:9090", http.StatusOK},
		{"127.3.4.5", http.StatusOK},
		{"[::1]:9090", http.StatusOK},
		{"[::1]", http.StatusOK},
		{"redcron.internal:443", http.StatusOK},
		{"evil.example:9090", http.StatusMisdirectedRequest},
		{"localhost.evil.example", http.StatusMisdirectedRequest},
		{"10.0.0.1:9090", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/status", nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("Host %q: got %d, want %d", tt.host, rec.Code, tt.want)
			}
		})
	}
}

// TestAnswersRedacted: a secret in a record (written by a replica that
// did not redact it), in a job's schedule and in a pause note shows as
// its ${VAR} in every answer.
func TestAnswersRedacted(t *testing.T) {
	const secret = "tok-abcdef123456"
	env := map[string]string{"TOKEN": secret}
	cfg, err := jobs.Parse("jobs.yaml", []byte(`
jobs:
  ping:
    schedule: "@every 10s"
    http: {url: "http://127.0.0.1:1/x?token=${TOKEN}"}
`), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t, redistest.Options{})
	c := rs.Client(t)
	st := store.New(mustLocker(t, c, locker.Options{}), "")
	ctx := context.Background()
	slot := time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)
	rec := store.Record{Job: "ping", Slot: slot, Outcome: "error", Fence: 1, Replica: "old",
		Error: `Get "http://127.0.0.1:1/x?token=` + secret + `": refused`, Output: "echo " + secret}
	if err := c.ZAdd(ctx, store.JobKeys("", "ping").History(), redis.Z{Score: float64(slot.UnixMilli()), Member: rec.Encode()}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.Pause(ctx, "ping", "rotating "+secret); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Source: src{cfg.Jobs, st, time.Now()}, Token: "t", Replica: "r1", Secrets: cfg.Secrets}))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/api/status", "/api/jobs", "/api/jobs/ping", "/api/jobs/ping/history"} {
		code, body := do(t, "GET", srv.URL+path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if strings.Contains(body, secret) {
			t.Errorf("GET %s shows the secret: %s", path, body)
		}
		if !strings.Contains(body, "${TOKEN}") {
			t.Errorf("GET %s: want ${TOKEN} in place of the secret: %s", path, body)
		}
	}
}
