// Package statusapi serves redcron's status API and page, as an
// http.Handler an embedding program can mount (ForScheduler): every job
// with its state (paused with its note, running now, next slots, last
// record, config drift), a strip of its recent records, paged history, the
// live replicas; and pause, resume and trigger, which change state and so
// need a bearer token (and, with Config.ReadAuth, so do the reads).
// Everything is read from Redis, so every replica shows the same.
//
// Secrets (Config.Secrets) are redacted from every JSON answer: a
// record's error or output, a job's schedule, an error from Redis, all
// show a secret as the ${VAR} it came from.
package statusapi

import (
	"bytes"
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
	// ReadAuth makes the reads (GET /api/...) require the bearer token too;
	// without a Token they are then refused (403). The page itself, static
	// and without data, stays open: it asks for the token once and sends
	// it with every read.
	ReadAuth bool
	// Secrets are redacted from every JSON answer (see the package doc);
	// nil: none.
	Secrets *jobs.Secrets
}

// SchedulerConfig is the Config of a running scheduler: its jobs, store,
// clock, replica name, manual trigger and secrets, with token guarding the
// actions that change state (empty: they are refused). Set ReadAuth on it
// to guard the reads too.
func SchedulerConfig(s *scheduler.Scheduler, token string) Config {
	return Config{Source: s, Replica: s.Replica(), Token: token, Trigger: s.Trigger, Secrets: s.Secrets()}
}

// ForScheduler is New(SchedulerConfig(s, token)): the handler of a running
// scheduler. Mount it anywhere, e.g. under http.StripPrefix("/redcron",
// ...): the page's links are relative.
func ForScheduler(s *scheduler.Scheduler, token string) http.Handler {
	return New(SchedulerConfig(s, token))
}

type api struct {
	cfg Config
}

// New returns the handler:
//
//	GET  /                              the page
//	GET  /api/status                    Snapshot: jobs and replicas (bearer with ReadAuth)
//	GET  /api/jobs                      []JobStatus (bearer with ReadAuth)
//	GET  /api/jobs/{job}                JobStatus (bearer with ReadAuth)
//	GET  /api/jobs/{job}/history        HistoryPage (?limit=N&before=RFC3339&failures=1; bearer with ReadAuth)
//	GET  /api/replicas                  []ReplicaStatus (bearer with ReadAuth)
//	POST /api/jobs/{job}/pause          (bearer; body {"note": "..."} optional)
//	POST /api/jobs/{job}/resume         (bearer)
//	POST /api/jobs/{job}/trigger        (bearer)
func New(cfg Config) http.Handler {
	a := &api{cfg: cfg}
	read := func(h http.HandlerFunc) http.HandlerFunc {
		if cfg.ReadAuth {
			return a.authorized(h)
		}
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /api/status", read(a.snapshot))
	mux.HandleFunc("GET /api/jobs", read(a.list))
	mux.HandleFunc("GET /api/jobs/{name}", read(a.one))
	mux.HandleFunc("GET /api/jobs/{name}/history", read(a.history))
	mux.HandleFunc("GET /api/replicas", read(a.replicas))
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
	a.writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
	return nil
}

func (a *api) snapshot(w http.ResponseWriter, r *http.Request) {
	a.writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status))
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	a.writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status).Jobs)
}

func (a *api) one(w http.ResponseWriter, r *http.Request) {
	if j := a.job(w, r); j != nil {
		a.writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status, j.Name).Jobs[0])
	}
}

func (a *api) replicas(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
	defer cancel()
	reps, _, err := Replicas(ctx, a.cfg.Source.Store())
	if err != nil {
		a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	a.writeJSON(w, http.StatusOK, reps)
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
			a.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit: want 1 to 1000"})
			return
		}
		p.Limit = n
	}
	if s := q.Get("before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			a.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "before: want an RFC 3339 time"})
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
		a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
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
	a.writeJSON(w, http.StatusOK, page)
}

// authorized requires "Authorization: Bearer <Token>".
func (a *api) authorized(h http.HandlerFunc) http.HandlerFunc {
	return RequireBearer(a.cfg.Token, h).ServeHTTP
}

// RequireBearer serves h only to requests with "Authorization: Bearer
// <token>" (compared in constant time): others get 401 with a JSON error,
// and every request gets 403 when token is empty (nothing can be allowed
// without one). cmd/redcron guards /metrics with it when reads need the
// token.
func RequireBearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "refused: this server has no token (start the replica with REDCRON_HTTP_TOKEN set)"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="redcron"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		h.ServeHTTP(w, r)
	})
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
				a.writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: want {\"note\": \"...\"}"})
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
			a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		a.writeJSON(w, http.StatusOK, Status(r.Context(), a.cfg.Source, a.cfg.Status, j.Name).Jobs[0])
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
		a.writeJSON(w, http.StatusNotFound, map[string]string{"error": "triggers are off on this server"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Status.withDefaults().Timeout)
	defer cancel()
	slot, fence, err := a.cfg.Trigger(ctx, name)
	switch {
	case err == nil:
		a.writeJSON(w, http.StatusAccepted, map[string]any{"job": name, "slot": slot, "fence": fence, "replica": a.cfg.Replica})
	case errors.Is(err, locker.ErrNotObtained), errors.Is(err, scheduler.ErrJobDisabled):
		a.writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	}
}

// writeJSON answers v as indented JSON, with the API's secrets redacted.
func (a *api) writeJSON(w http.ResponseWriter, code int, v any) {
	writeRedactedJSON(w, code, v, a.cfg.Secrets)
}

func writeJSON(w http.ResponseWriter, code int, v any) { writeRedactedJSON(w, code, v, nil) }

func writeRedactedJSON(w http.ResponseWriter, code int, v any, sec *jobs.Secrets) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the API's values always encode
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(sec.RedactJSON(b.Bytes()))
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
