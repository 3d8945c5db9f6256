// Package statusapi serves redcron's status API and page, as an
// http.Handler an embedding program can mount (ForScheduler): every job
// with its state (paused with its note, running now, next slots, last
// record, config drift), a strip of its recent records, paged history, the
// live replicas; and pause, resume and trigger, which change state and so
// need a bearer token. Everything is read from Redis, so every replica
// shows the same.
package statusapi

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/store"
)

// Config is what the API serves.
type Config struct {
	// Source gives the jobs (read at every request: a reload shows), the
	// store and the clock. Required.
	Source Source
	// Replica names the replica serving the page.
	Replica string
	// Token is the bearer token that pause, resume and trigger require.
	// Empty: they are refused (403), so that state never changes without
	// one.
	Token string
	// Trigger runs a job now (scheduler.Scheduler.Trigger); nil turns the
	// trigger action off.
	Trigger func(ctx context.Context, job string) (slot time.Time, fence int64, err error)
	// Status shapes what each job shows (next slots, recent records,
	// timeout); see Options.
	Status Options
}

// ForScheduler is New for a running scheduler: its jobs, store, clock,
// replica name and manual trigger, with token guarding the actions that
// change state (empty: they are refused). Mount it anywhere, e.g. under
// http.StripPrefix("/redcron", ...): the page's links are relative.
func ForScheduler(s *scheduler.Scheduler, token string) http.Handler {
	return New(Config{Source: s, Replica: s.Replica(), Token: token, Trigger: s.Trigger})
}

type api struct {
	cfg Config
}

// New returns the handler:
//
//	GET  /                              the page
//	GET  /api/status                    Snapshot: jobs and replicas
//	GET  /api/jobs                      []JobStatus
//	GET  /api/jobs/{job}                JobStatus
//	GET  /api/jobs/{job}/history        HistoryPage (?limit=N&before=RFC3339&failures=1)
//	GET  /api/replicas                  []ReplicaStatus
//	POST /api/jobs/{job}/pause          (bearer; body {"note": "..."} optional)
//	POST /api/jobs/{job}/resume         (bearer)
//	POST /api/jobs/{job}/trigger        (bearer)
func New(cfg Config) http.Handler {
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /api/status", a.snapshot)
	mux.HandleFunc("GET /api/jobs", a.list)
	mux.HandleFunc("GET /api/jobs/{name}", a.one)
	mux.HandleFunc("GET /api/jobs/{name}/history", a.history)
	mux.HandleFunc("GET /api/replicas", a.replicas)
	mux.HandleFunc("POST /api/jobs/{name}/pause", a.authorized(a.pause(true)))
	mux.HandleFunc("POST /api/jobs/{name}/resume", a.authorized(a.pause(false)))
	mux.HandleFunc("POST /api/jobs/{name}/trigger", a.authorized(a.trigger))
	return mux
}

// job is the job named in the request's path, or nil after a 404.
func (a *api) job(w http.ResponseWriter, r *http.Request) *jobs.Job {
	name := r.PathValue("name")
	for _, j := range a.cfg.Source.Jobs() {
		if j.Name == name {
			return j
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
	return nil
}

func (a *api) snapshot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status))
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status).Jobs)
}

func (a *api) one(w http.ResponseWriter, r *http.Request) {
	if j := a.job(w, r); j != nil {
		writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status, j.Name).Jobs[0])
	}
}

func (a *api) replicas(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
	defer cancel()
	reps, _, err := Replicas(ctx, a.cfg.Source.Store())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, reps)
}

// HistoryPage is one page of a job's records, newest slot first;
// NextBefore, when not nil, asks for the next page (?before=).
type HistoryPage struct {
	Records    []store.Record `json:"records"`
	NextBefore *time.Time     `json:"next_before"`
}

func (a *api) history(w http.ResponseWriter, r *http.Request) {
	j := a.job(w, r)
	if j == nil {
		return
	}
	q := r.URL.Query()
	p := store.Page{Limit: 20, Failures: q.Get("failures") == "1" || q.Get("failures") == "true"}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want 1 to 1000"})
			return
		}
		p.Limit = n
	}
	if s := q.Get("before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "before: want an RFC 3339 time"})
			return
		}
		p.Before = t
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
	defer cancel()
	want := p.Limit
	p.Limit++ // one more tells whether a next page exists
	recs, err := a.cfg.Source.Store().History(ctx, j.Name, p)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	page := HistoryPage{Records: recs}
	if len(recs) > want {
		page.Records = recs[:want]
		next := recs[want-1].Slot
		page.NextBefore = &next
	}
	if page.Records == nil {
		page.Records = []store.Record{}
	}
	writeJSON(w, http.StatusOK, page)
}

// authorized requires "Authorization: Bearer <Token>".
func (a *api) authorized(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "state-changing actions are off: start the replica with REDCRON_HTTP_TOKEN set"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="redcron"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h(w, r)
	}
}

// maxNote bounds a pause note.
const maxNote = 500

// pause pauses (on, with the note of the JSON body {"note": "..."}, if any)
// or resumes the job on every node; it succeeds when a majority confirmed,
// and answers with the job's status.
func (a *api) pause(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		j := a.job(w, r)
		if j == nil {
			return
		}
		var body struct {
			Note string `json:"note"`
		}
		if on && r.ContentLength != 0 {
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&body); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want {\"note\": \"...\"}"})
				return
			}
		}
		if len(body.Note) > maxNote {
			body.Note = body.Note[:maxNote]
		}
		if body.Note == "" {
			body.Note = "paused through the API of " + a.cfg.Replica
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
		defer cancel()
		var err error
		if on {
			err = a.cfg.Source.Store().Pause(ctx, j.Name, body.Note)
		} else {
			err = a.cfg.Source.Store().Resume(ctx, j.Name)
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status, j.Name).Jobs[0])
	}
}

// trigger runs the job now, under its own claim and fence: 202 with the
// run's slot and fence, 409 when overlap forbids it or the job is disabled.
func (a *api) trigger(w http.ResponseWriter, r *http.Request) {
	j := a.job(w, r)
	if j == nil {
		return
	}
	name := j.Name
	if a.cfg.Trigger == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "triggers are off on this server"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
	defer cancel()
	slot, fence, err := a.cfg.Trigger(ctx, name)
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, map[string]any{"job": name, "slot": slot, "fence": fence, "replica": a.cfg.Replica})
	case errors.Is(err, locker.ErrNotObtained), errors.Is(err, scheduler.ErrJobDisabled):
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

//go:embed page.html
var pageHTML []byte

// page serves the dashboard: one static page (no assets from the network)
// that reads the API with relative URLs, so it works under any path prefix.
func (a *api) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(pageHTML)
}
