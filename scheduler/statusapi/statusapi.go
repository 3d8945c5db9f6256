// Package statusapi serves redcron's status API and page, as an
// http.Handler an embedding program can mount (ForScheduler): every job with its
// schedule, next fire times, pause state and recent runs, read from Redis so
// that every replica shows the same; and pause and resume, which change state
// and so need a bearer token.
package statusapi

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/store"
)

// Config is what the API serves.
type Config struct {
	// Jobs are the replica's jobs, in file order.
	Jobs []*jobs.Job
	// Store reads and writes pause state and history (on a majority of
	// nodes in quorum mode).
	Store *store.Store
	// Token is the bearer token that pause and resume require. Empty: they
	// are refused (403), so that state never changes without one.
	Token string
	// Replica names the replica serving the page.
	Replica string
	// Now is the clock for next fire times; default time.Now.
	Now func() time.Time
	// History is how many recent runs a job shows; default 10.
	History int
	// Timeout bounds the Redis calls of one request; default 2s.
	Timeout time.Duration
	// Trigger runs a job now (scheduler.Scheduler.Trigger); nil turns the
	// trigger action off.
	Trigger func(ctx context.Context, job string) (slot time.Time, fence int64, err error)
}

// JobStatus is one job in the API's answers.
type JobStatus struct {
	Name     string         `json:"name"`
	Kind     string         `json:"kind"`
	Schedule string         `json:"schedule"`
	Timezone string         `json:"timezone"`
	Enabled  bool           `json:"enabled"`
	Paused   bool           `json:"paused"`
	Next     []time.Time    `json:"next"`
	Recent   []store.Record `json:"recent"`
	Error    string         `json:"error,omitempty"` // Redis could not be read
}

type api struct {
	cfg    Config
	byName map[string]*jobs.Job
}

// ForScheduler is New for a running scheduler: its jobs, store, replica
// name, clock and manual trigger, with token guarding the actions that
// change state (empty: they are refused). Mount it anywhere, e.g. under
// http.StripPrefix("/redcron", ...): the page's links are relative.
func ForScheduler(s *scheduler.Scheduler, token string) http.Handler {
	return New(Config{Jobs: s.Jobs(), Store: s.Store(), Token: token, Replica: s.Replica(), Now: s.Now, Trigger: s.Trigger})
}

// New returns the handler: GET / (the page), GET /api/jobs, GET
// /api/jobs/{name}, POST /api/jobs/{name}/pause, /resume and /trigger
// (bearer token).
func New(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.History <= 0 {
		cfg.History = 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	a := &api{cfg: cfg, byName: map[string]*jobs.Job{}}
	for _, j := range cfg.Jobs {
		a.byName[j.Name] = j
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /api/jobs", a.list)
	mux.HandleFunc("GET /api/jobs/{name}", a.one)
	mux.HandleFunc("POST /api/jobs/{name}/pause", a.authorized(a.pause(true)))
	mux.HandleFunc("POST /api/jobs/{name}/resume", a.authorized(a.pause(false)))
	mux.HandleFunc("POST /api/jobs/{name}/trigger", a.authorized(a.trigger))
	return mux
}

func (a *api) status(ctx context.Context, j *jobs.Job) JobStatus {
	st := JobStatus{Name: j.Name, Kind: j.Kind, Schedule: j.Spec, Timezone: j.Location.String(), Enabled: j.Enabled, Recent: []store.Record{}}
	t := a.cfg.Now()
	for range 3 {
		if t = j.Schedule.Next(t); t.IsZero() {
			break
		}
		st.Next = append(st.Next, t)
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	p, err := a.cfg.Store.Paused(ctx, j.Name)
	if err == nil {
		st.Paused = p.Paused
		st.Recent, err = a.cfg.Store.History(ctx, j.Name, a.cfg.History)
	}
	if err != nil {
		st.Error = err.Error()
	}
	if st.Recent == nil {
		st.Recent = []store.Record{}
	}
	return st
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	out := make([]JobStatus, 0, len(a.cfg.Jobs))
	for _, j := range a.cfg.Jobs {
		out = append(out, a.status(r.Context(), j))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) one(w http.ResponseWriter, r *http.Request) {
	j, ok := a.byName[r.PathValue("name")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
		return
	}
	writeJSON(w, http.StatusOK, a.status(r.Context(), j))
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

// pause pauses (on) or resumes the job on every node; it succeeds when a
// majority confirmed.
func (a *api) pause(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if _, ok := a.byName[name]; !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		var err error
		if on {
			err = a.cfg.Store.Pause(ctx, name, "paused via API from "+a.cfg.Replica)
		} else {
			err = a.cfg.Store.Resume(ctx, name)
		}
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, a.status(r.Context(), a.byName[name]))
	}
}

// trigger runs the job now, under its own claim and fence: 202 with the
// run's slot and fence, 409 when overlap forbids it or the job is disabled.
func (a *api) trigger(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, ok := a.byName[name]; !ok || a.cfg.Trigger == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such job, or triggers are off"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
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
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"utc": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
}).Parse(pageHTML))

func (a *api) page(w http.ResponseWriter, r *http.Request) {
	data := struct {
		Replica string
		Now     time.Time
		Jobs    []JobStatus
	}{Replica: a.cfg.Replica, Now: a.cfg.Now()}
	for _, j := range a.cfg.Jobs {
		data.Jobs = append(data.Jobs, a.status(r.Context(), j))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil {
		http.Error(w, fmt.Sprintf("page: %v", err), http.StatusInternalServerError)
	}
}
