package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
)

// TestReload: a reload replaces the jobs while Run goes on. A removed job
// is no longer scheduled, and its run going on finishes (not cancelled); a
// changed job takes effect from its next slot; an unchanged one keeps its
// state; a new one starts from its next slot; invalid jobs are refused and
// change nothing.
func TestReload(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fast := registerLedgerFunc(l, behaviour{})
	slow := registerLedgerFunc(l, behaviour{sleep: 2 * time.Second})
	js := []*jobs.Job{
		testJob(t, "keep", "* * * * * *", fast, nil),
		testJob(t, "removed", "* * * * * *", slow, nil),
		testJob(t, "changed", "@every 1h", fast, nil),
	}
	in := startInstance(t, srv, js, Options{Replica: "r0"})
	waitFor(t, 5*time.Second, func() bool { return countRuns(l, "removed") == 1 })
	keepState := in.s.job("keep")

	if err := in.s.Reload([]*jobs.Job{js[0], js[0]}); !errors.Is(err, ErrInvalidJob) {
		t.Fatalf("Reload with a job declared twice: got %v, want ErrInvalidJob", err)
	}
	if in.s.job("removed") == nil {
		t.Fatalf("a refused reload changed the jobs")
	}

	next := []*jobs.Job{
		testJob(t, "keep", "* * * * * *", fast, nil),
		testJob(t, "changed", "* * * * * *", fast, nil), // from hourly to every second
		testJob(t, "added", "* * * * * *", fast, nil),
	}
	registered := func(gen int64, job string) func() bool {
		return func() bool {
			rs, err := in.s.store.Replicas(context.Background())
			return err == nil && len(rs) == 1 && rs[0].Generation == gen && rs[0].Jobs[job] != ""
		}
	}
	waitFor(t, 10*time.Second, registered(1, "removed"))
	reloaded := time.Now()
	if err := in.s.Reload(next); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// The next heartbeat registers the new jobs as the replica's second
	// generation: the newer copy where quorum nodes disagree.
	waitFor(t, 10*time.Second, registered(2, "added"))
	if in.s.job("keep") != keepState {
		t.Errorf("an unchanged job lost its state in the reload")
	}
	waitFor(t, 5*time.Second, func() bool { return countRuns(l, "changed") >= 2 && countRuns(l, "added") >= 2 })
	time.Sleep(2500 * time.Millisecond) // the removed job's run (2s) finishes meanwhile
	for _, e := range l.snapshot() {
		switch e.job {
		case "removed":
			if e.start.After(reloaded) {
				t.Errorf("removed job ran slot %v after the reload", e.slot)
			}
			if e.end.IsZero() || e.cause != nil {
				t.Errorf("the removed job's run going on at the reload: end %v cause %v, want it to finish normally", e.end, e.cause)
			}
		case "changed", "added":
			if e.slot.Before(reloaded.Truncate(time.Second)) {
				t.Errorf("%s ran slot %v, from before the reload (no catch-up for a new or changed job)", e.job, e.slot)
			}
		}
	}
	if n := countRuns(l, "keep"); n < 3 {
		t.Errorf("unchanged job: %d runs, want it to go on", n)
	}
}

func countRuns(l *ledger, job string) int {
	n := 0
	for _, e := range l.snapshot() {
		if e.job == job {
			n++
		}
	}
	return n
}
