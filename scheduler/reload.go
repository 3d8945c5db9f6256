package scheduler

import (
	"fmt"

	"github.com/redcron/redcron/jobs"
)

// reload is a new set of jobs for the loop, which closes done once it
// applied it.
type reload struct {
	jobs   []*jobState
	layout func() // sets ranks and memos: the loop owns them
	done   chan struct{}
}

// Reload replaces the scheduler's jobs (SIGHUP with a valid file): a job
// removed stops being scheduled (a run of it going on finishes), a new or
// changed one takes effect from its next slot (no catch-up), and a job
// whose definition is unchanged keeps its state. It fails, changing
// nothing, with ErrInvalidJob for the same jobs New refuses. The cluster
// settings (prefix, clock skew, grace, Redis) are not reloaded: they need a
// restart.
func (s *Scheduler) Reload(js []*jobs.Job) error {
	old := s.snapshot()
	states, layout, err := s.states(js, old)
	if err != nil {
		return fmt.Errorf("scheduler: reload: %w", err)
	}
	kept := map[string]bool{}
	for _, js := range states {
		kept[js.job.Name] = true
	}
	for _, o := range old {
		if !kept[o.job.Name] {
			s.metrics.dropJob(o.job.Name)
		}
	}
	if !s.started.Load() {
		layout()
	}
	// Until the new registration is written, the beats say the config is
	// changing: the others then claim rather than count on this replica
	// for a job it may no longer have.
	s.share.setHash(reloadingHash)
	s.jobsMu.Lock()
	s.jobs = states
	s.jobsMu.Unlock()
	s.share.kick()
	if !s.started.Load() {
		return nil // Run's loop starts from s.jobs
	}
	r := reload{jobs: states, layout: layout, done: make(chan struct{})}
	select {
	case s.reloads <- r:
		select {
		case <-r.done:
		case <-s.loopDone:
		}
	case <-s.loopDone:
	}
	return nil
}

// snapshot is the current jobs.
func (s *Scheduler) snapshot() []*jobState {
	s.jobsMu.RLock()
	defer s.jobsMu.RUnlock()
	return s.jobs
}

// job is the state of the job named name, nil if none.
func (s *Scheduler) job(name string) *jobState {
	for _, js := range s.snapshot() {
		if js.job.Name == name {
			return js
		}
	}
	return nil
}
