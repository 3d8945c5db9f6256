package statusapi

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// Source is what the status reads: a *scheduler.Scheduler, or the jobs of
// a jobs.yaml and a store (the CLI).
type Source interface {
	// Jobs are the jobs to show, in file order.
	Jobs() []*jobs.Job
	// Store reads pause state, history, running runs and replicas.
	Store() *store.Store
	// Now is the clock for next fire times.
	Now() time.Time
}

// Snapshot is the cluster's state as the API, the page and `redcron status
// --json` show it.
type Snapshot struct {
	Jobs     []JobStatus     `json:"jobs"`
	Replicas []ReplicaStatus `json:"replicas"`
	// Error says why the replicas could not be read ("" when they were).
	Error string `json:"error,omitempty"`
}

// JobStatus is one job: its definition, pause, what runs now, its next
// slots, its last record, drift, and its recent records (newest first).
type JobStatus struct {
	Job      string         `json:"job"`
	Kind     string         `json:"kind"`
	Schedule string         `json:"schedule"`
	Timezone string         `json:"timezone"`
	Enabled  bool           `json:"enabled"`
	Paused   bool           `json:"paused"`
	Note     string         `json:"note,omitempty"`
	Running  []RunningRun   `json:"running"`
	Next     []time.Time    `json:"next"`
	Last     *store.Record  `json:"last"`
	Drift    bool           `json:"drift"`
	Recent   []store.Record `json:"recent"`
	// Error says why Redis could not be read for this job ("" when it was).
	Error string `json:"error,omitempty"`
}

// RunningRun is a run that holds its lease now.
type RunningRun struct {
	Slot       time.Time `json:"slot"`
	Replica    string    `json:"replica"`
	Fence      int64     `json:"fence"`
	Started    time.Time `json:"started"`
	Manual     bool      `json:"manual,omitempty"`
	LeaseUntil time.Time `json:"lease_until"`
}

// ReplicaStatus is a live replica, with the jobs it defines differently
// from the other live replicas.
type ReplicaStatus struct {
	store.Replica
	Drift []string `json:"drift,omitempty"`
}

// Options shape a Status.
type Options struct {
	// Next is how many next slots each job shows; default 3.
	Next int
	// Recent is how many recent records each job shows; default 30.
	Recent int
	// Timeout bounds the Redis reads; default 2s.
	Timeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Next <= 0 {
		o.Next = 3
	}
	if o.Recent <= 0 {
		o.Recent = 30
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

// Status reads the cluster's state for src's jobs (all of them, or only
// those named in only), in parallel across jobs. A job whose state could
// not be read carries its Error; so does the snapshot for the replicas.
func Status(ctx context.Context, src Source, o Options, only ...string) Snapshot {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	st := src.Store()
	var snap Snapshot
	reps, drift, err := Replicas(ctx, st)
	if err != nil {
		snap.Error = err.Error()
	}
	snap.Replicas = reps
	var js []*jobs.Job
	for _, j := range src.Jobs() {
		if len(only) == 0 || slices.Contains(only, j.Name) {
			js = append(js, j)
		}
	}
	snap.Jobs = make([]JobStatus, len(js))
	now := src.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // bounded fan-out over jobs
	for i, j := range js {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			snap.Jobs[i] = jobStatus(ctx, st, j, now, o, drift[j.Name])
		}()
	}
	wg.Wait()
	return snap
}

func jobStatus(ctx context.Context, st *store.Store, j *jobs.Job, now time.Time, o Options, drift bool) JobStatus {
	js := JobStatus{Job: j.Name, Kind: j.Kind, Schedule: j.Spec, Timezone: j.Location.String(), Enabled: j.Enabled,
		Drift: drift, Running: []RunningRun{}, Next: []time.Time{}, Recent: []store.Record{}}
	t := now
	for range o.Next {
		if t = j.Schedule.Next(t); t.IsZero() {
			break
		}
		js.Next = append(js.Next, t)
	}
	p, err := st.Paused(ctx, j.Name)
	if err != nil {
		js.Error = err.Error()
		return js
	}
	js.Paused, js.Note = p.Paused, p.Note
	runs, err := st.Running(ctx, j.Name)
	if err != nil {
		js.Error = err.Error()
		return js
	}
	for _, r := range runs {
		js.Running = append(js.Running, RunningRun{Slot: r.Record.Slot, Replica: r.Record.Replica, Fence: r.Record.Fence,
			Started: r.Record.Started, Manual: r.Record.Manual, LeaseUntil: r.LeaseUntil})
	}
	recent, err := st.History(ctx, j.Name, store.Page{Limit: o.Recent})
	if err != nil {
		js.Error = err.Error()
		return js
	}
	js.Recent = recent
	if len(recent) > 0 {
		js.Last = &recent[0]
	}
	return js
}

// Replicas reads the live replicas, each with the jobs it defines
// differently from the others, and the drift of every job.
func Replicas(ctx context.Context, st *store.Store) ([]ReplicaStatus, map[string]bool, error) {
	reps, err := st.Replicas(ctx)
	drift := store.Drift(reps)
	out := []ReplicaStatus{}
	for _, r := range reps {
		rs := ReplicaStatus{Replica: r}
		for job := range r.Jobs {
			if drift[job] {
				rs.Drift = append(rs.Drift, job)
			}
		}
		slices.Sort(rs.Drift)
		out = append(out, rs)
	}
	return out, drift, err
}
