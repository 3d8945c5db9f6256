package statusapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const config = `
jobs:
  backup:
    schedule: "0 3 * * *"
    timezone: Europe/Berlin
    command: ["true"]
  ping:
    schedule: "@every 10s"
    http: {url: "http://127.0.0.1:1/x"}
    enabled: false
`

func setup(t *testing.T, token string) (*httptest.Server, *redis.Client) {
	t.Helper()
	cfg, err := jobs.Parse("jobs.yaml", []byte(config), nil)
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t, redistest.Options{})
	c := rs.Client(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h := New(Config{Source: src{cfg.Jobs, store.New(mustLocker(t, c, locker.Options{}), ""), now}, Token: token, Replica: "r1"})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, c
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPauseNeedsToken(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		configured string // the replica's token
		sent       string
		want       int
		paused     bool
	}{
		{"no token configured", "", "anything", http.StatusForbidden, false},
		{"no token sent", "s3cret", "", http.StatusUnauthorized, false},
		{"wrong token", "s3cret", "guess", http.StatusUnauthorized, false},
		{"right token", "s3cret", "s3cret", http.StatusOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := setup(t, tc.configured)
			code, body := do(t, "POST", srv.URL+"/api/jobs/backup/pause", tc.sent)
			if code != tc.want {
				t.Fatalf("pause: got %d, want %d: %s", code, tc.want, body)
			}
			n, err := c.Exists(ctx, store.JobKeys("", "backup").Paused()).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := n == 1; got != tc.paused {
				t.Fatalf("pause key present: got %v, want %v", got, tc.paused)
			}
		})
	}
}

func TestStatusPauseResume(t *testing.T) {
	ctx := context.Background()
	srv, c := setup(t, "tok")
	rec := store.Record{Job: "backup", Slot: time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC), Outcome: "ok", Fence: 7, Replica: "r2"}
	if err := c.ZAdd(ctx, store.JobKeys("", "backup").History(), redis.Z{Score: float64(rec.Slot.UnixMilli()), Member: rec.Encode()}).Err(); err != nil {
		t.Fatal(err)
	}

	if code, body := do(t, "POST", srv.URL+"/api/jobs/backup/pause", "tok"); code != http.StatusOK {
		t.Fatalf("pause: got %d: %s", code, body)
	}
	code, body := do(t, "GET", srv.URL+"/api/jobs", "")
	if code != http.StatusOK {
		t.Fatalf("list: got %d: %s", code, body)
	}
	var list []JobStatus
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("list: %v: %s", err, body)
	}
	if len(list) != 2 {
		t.Fatalf("list: got %d jobs, want 2", len(list))
	}
	b0 := list[0]
	if b0.Job != "backup" || !b0.Paused || !b0.Enabled {
		t.Fatalf("backup: got name %q paused %v enabled %v, want backup, paused, enabled", b0.Job, b0.Paused, b0.Enabled)
	}
	// 03:00 Berlin is 02:00 UTC in November.
	if len(b0.Next) != 3 || !b0.Next[0].Equal(time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("backup next: got %v, want 3 slots from 2026-11-26T02:00:00Z", b0.Next)
	}
	if len(b0.Recent) != 1 || b0.Recent[0].Fence != 7 || b0.Recent[0].Replica != "r2" {
		t.Fatalf("backup recent: got %+v, want the one record with fence 7 from r2", b0.Recent)
	}
	if list[1].Job != "ping" || list[1].Enabled {
		t.Fatalf("ping: got %+v, want disabled", list[1])
	}

	if code, body := do(t, "POST", srv.URL+"/api/jobs/backup/resume", "tok"); code != http.StatusOK {
		t.Fatalf("resume: got %d: %s", code, body)
	}
	if n, _ := c.Exists(ctx, store.JobKeys("", "backup").Paused()).Result(); n != 0 {
		t.Fatalf("after resume: pause key still present")
	}

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/jobs/nope", http.StatusNotFound},
		{"POST", "/api/jobs/nope/pause", http.StatusNotFound},
		{"GET", "/api/jobs/backup/pause", http.StatusMethodNotAllowed},
		{"GET", "/api/jobs/backup", http.StatusOK},
	} {
		if code, body := do(t, tc.method, srv.URL+tc.path, "tok"); code != tc.want {
			t.Errorf("%s %s: got %d, want %d: %s", tc.method, tc.path, code, tc.want, body)
		}
	}

	code, page := do(t, "GET", srv.URL+"/", "")
	if code != http.StatusOK || !strings.Contains(page, "redcron") {
		t.Fatalf("page: got %d, want 200 with the backup job and its run:\n%s", code, page)
	}
}

func TestRedisDown(t *testing.T) {
	// Redis is gone: status still answers, with the error; pause refuses.
	cfg, _ := jobs.Parse("jobs.yaml", []byte(config), nil)
	rs := redistest.Start(t, redistest.Options{})
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	_ = rs.Kill()
	down := httptest.NewServer(New(Config{Source: src{cfg.Jobs, store.New(mustLocker(t, c, locker.Options{NodeTimeout: 300 * time.Millisecond}), ""), time.Now()}, Token: "tok"}))
	t.Cleanup(down.Close)
	code, body := do(t, "GET", down.URL+"/api/jobs/backup", "")
	if code != http.StatusOK || !strings.Contains(body, `"error"`) {
		t.Fatalf("status with Redis down: got %d %s, want 200 with an error field", code, body)
	}
	if code, _ := do(t, "POST", down.URL+"/api/jobs/backup/pause", "tok"); code != http.StatusServiceUnavailable {
		t.Fatalf("pause with Redis down: got %d, want 503", code)
	}
}

// TestTrigger maps the scheduler's answers to HTTP: the scheduler's Trigger
// itself is tested on real Redis in package scheduler.
func TestTrigger(t *testing.T) {
	cfg, err := jobs.Parse("jobs.yaml", []byte(config), nil)
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var called []string
	trigger := func(_ context.Context, job string) (time.Time, int64, error) {
		called = append(called, job)
		switch job {
		case "ping":
			return time.Time{}, 0, scheduler.ErrJobDisabled
		}
		return slot, 42, nil
	}
	srv := httptest.NewServer(New(Config{Source: src{cfg.Jobs, nil, slot}, Token: "tok", Replica: "r1", Trigger: trigger}))
	t.Cleanup(srv.Close)

	if code, _ := do(t, "POST", srv.URL+"/api/jobs/backup/trigger", ""); code != http.StatusUnauthorized {
		t.Fatalf("trigger without token: got %d, want 401", code)
	}
	if len(called) != 0 {
		t.Fatalf("trigger without token reached the scheduler: %v", called)
	}
	code, body := do(t, "POST", srv.URL+"/api/jobs/backup/trigger", "tok")
	if code != http.StatusAccepted || !strings.Contains(body, `"fence": 42`) {
		t.Fatalf("trigger: got %d %s, want 202 with fence 42", code, body)
	}
	if code, body := do(t, "POST", srv.URL+"/api/jobs/ping/trigger", "tok"); code != http.StatusConflict {
		t.Fatalf("trigger a disabled job: got %d %s, want 409", code, body)
	}
}

// TestQuorumReads: in quorum mode the pause state and the history come
// from a majority of nodes read in parallel, never from the first node that
// answers: a stale pause key on one node of three does not pause the job,
// history records are merged across the nodes, and with one node down pause,
// resume and status still work, while with two down they fail.
func TestQuorumReads(t *testing.T) {
	ctx := context.Background()
	cfg, err := jobs.Parse("jobs.yaml", []byte(config), nil)
	if err != nil {
		t.Fatal(err)
	}
	var servers []*redistest.Server
	var raw []*redis.Client
	var clients []locker.Client
	for range 3 {
		s := redistest.Start(t, redistest.Options{})
		servers = append(servers, s)
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		raw = append(raw, c)
		clients = append(clients, c)
	}
	q, err := locker.NewQuorum(clients, locker.Options{NodeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Source: src{cfg.Jobs, store.New(q, ""), time.Now()}, Token: "tok", Replica: "r1"}))
	t.Cleanup(srv.Close)
	keys := store.JobKeys("", "backup")
	status := func(t *testing.T) JobStatus {
		t.Helper()
		code, body := do(t, "GET", srv.URL+"/api/jobs/backup", "")
		var st JobStatus
		if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
			t.Fatalf("status: got %d %s (%v)", code, body, err)
		}
		return st
	}

	// A stale pause on the first node alone: claims still win on the other
	// two, so the job is not paused.
	if err := raw[0].Set(ctx, keys.Paused(), "stale", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if st := status(t); st.Paused {
		t.Errorf("pause key on 1 of 3 nodes: got paused, want not paused")
	}
	// Records written on different nodes are all shown, once each.
	r1 := store.Record{Job: "backup", Slot: time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC), Outcome: "ok", Fence: 1, Replica: "a"}
	r2 := store.Record{Job: "backup", Slot: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), Outcome: "error", Fence: 2, Replica: "b"}
	z := func(r store.Record) redis.Z { return redis.Z{Score: float64(r.Slot.UnixMilli()), Member: r.Encode()} }
	raw[0].ZAdd(ctx, keys.History(), z(r1))
	raw[1].ZAdd(ctx, keys.History(), z(r1), z(r2))
	raw[2].ZAdd(ctx, keys.History(), z(r2))
	if st := status(t); len(st.Recent) != 2 || st.Recent[0].Fence != 2 || st.Recent[1].Fence != 1 {
		t.Errorf("history over 3 nodes: got %+v, want fence 2 then fence 1", st.Recent)
	}

	// One node down: a majority still answers.
	if err := servers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "POST", srv.URL+"/api/jobs/backup/pause", "tok"); code != http.StatusOK {
		t.Fatalf("pause with 1 of 3 down: got %d %s, want 200", code, body)
	}
	if st := status(t); !st.Paused || st.Error != "" {
		t.Errorf("after pause with 1 of 3 down: got paused %v error %q, want paused", st.Paused, st.Error)
	}
	// Two down: no majority, no answer.
	if err := servers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, "POST", srv.URL+"/api/jobs/backup/resume", "tok"); code != http.StatusServiceUnavailable {
		t.Errorf("resume with 2 of 3 down: got %d, want 503", code)
	}
	if st := status(t); st.Error == "" || !strings.Contains(st.Error, "no quorum") {
		t.Errorf("status with 2 of 3 down: got error %q, want no quorum", st.Error)
	}
}

func mustLocker(t *testing.T, c *redis.Client, o locker.Options) *locker.Locker {
	t.Helper()
	l, err := locker.New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// src is a Source of fixed jobs, store and time.
type src struct {
	jobs  []*jobs.Job
	store *store.Store
	now   time.Time
}

func (s src) Jobs() []*jobs.Job   { return s.jobs }
func (s src) Store() *store.Store { return s.store }
func (s src) Now() time.Time      { return s.now }
