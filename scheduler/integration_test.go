package scheduler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// waitUntil waits in real time until the wall clock reaches t.
func waitUntil(t time.Time) { time.Sleep(time.Until(t)) }

// nextSecond is the start of the next whole second plus d.
func nextSecond(d time.Duration) time.Time {
	return time.Now().Truncate(time.Second).Add(time.Second + d)
}

// slotAhead is the first whole second at least d from now: a test that
// acts d before a slot (say, before its claims go out) has the time to.
func slotAhead(d time.Duration) time.Time {
	return time.Now().Add(d).Truncate(time.Second).Add(time.Second)
}

// claimsOut waits until before the earliest that claims of slot can go
// out (maxClaimAhead before it) and returns when s's claims of slot go
// out: its claim-ahead then, claimAhead or, on a loaded machine whose
// Redis answered slowly, more (claimLead). A test that times a fault
// against the claims reads it here rather than assume claimAhead.
func claimsOut(s *Scheduler, slot time.Time) time.Time {
	waitUntil(slot.Add(-maxClaimAhead - 150*time.Millisecond))
	return slot.Add(-s.ahead.ahead())
}

// TestExactlyOnce: three instances, 20 jobs every second for 15 s: every
// (job, slot) in the steady window runs exactly once, fences increase with
// slots; again with two instances' clocks 1.5 s ahead and behind.
func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		offsets [3]time.Duration
	}{
		{"same clocks", [3]time.Duration{0, 0, 0}},
		{"offsets +1.5s and -1.5s", [3]time.Duration{1500 * time.Millisecond, 0, -1500 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{})
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
			var js []*jobs.Job
			for i := range 20 {
				js = append(js, testJob(t, fmt.Sprintf("job%02d", i), "* * * * * *", fn, nil))
			}
			begin := nextSecond(0)
			waitUntil(begin.Add(-300 * time.Millisecond))
			for i, off := range tc.offsets {
				startInstance(t, srv, js, Options{Replica: fmt.Sprintf("r%d", i), Clock: OffsetClock(nil, off)})
			}
			end := begin.Add(16 * time.Second)
			waitUntil(end.Add(2 * time.Second)) // the -1.5s instance fires late
			got := checkOnce(t, l.snapshot(), begin.Add(2*time.Second))
			// Every slot in [begin+2s, end] ran (the first seconds are start-up).
			for _, j := range js {
				for s := begin.Add(2 * time.Second); !s.After(end); s = s.Add(time.Second) {
					if _, ok := got[j.Name][s.Unix()]; !ok {
						t.Errorf("job %s slot %v: got no run, want one", j.Name, s.UTC())
					}
				}
			}
			byReplica := map[string]int{}
			for _, m := range got {
				for _, e := range m {
					byReplica[e.replica]++
				}
			}
			t.Logf("runs by replica: %v", byReplica)
		})
	}
}

// TestLateReplicaOnTime: a replica whose clock is 1.9 s behind corrects
// it by its measured offset to Redis: it takes its share of the firings
// and starts them on time, and no slot runs twice (10 ms jobs).
func TestLateReplicaOnTime(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 10 * time.Millisecond})
	var js []*jobs.Job
	for i := range 5 {
		js = append(js, testJob(t, fmt.Sprintf("late%d", i), "* * * * * *", fn, nil))
	}
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	startInstance(t, srv, js, Options{Replica: "healthy"})
	startInstance(t, srv, js, Options{Replica: "late", Clock: OffsetClock(nil, -1900*time.Millisecond)})
	waitUntil(begin.Add(8 * time.Second))
	// Before begin+2s the late replica may not have measured its clock.
	got := checkOnce(t, l.snapshot(), begin.Add(2*time.Second))
	late := 0
	for job, m := range got {
		for _, e := range m {
			if e.replica == "late" {
				late++
				// Generous: the point is 1.9 s, the clock's error.
				if lag := e.start.Sub(e.slot); lag > 500*time.Millisecond {
					t.Errorf("job %s slot %v: the late replica started it %v after its slot, want on time", job, e.slot, lag)
				}
			}
		}
		if len(m) < 5 {
			t.Errorf("job %s: got %d runs, want >= 5", job, len(m))
		}
	}
	if late == 0 {
		t.Errorf("runs by the late replica: got 0, want its share")
	}
}

// TestOverlapAcrossInstances: a 2.5 s job every second on three instances.
func TestOverlapAcrossInstances(t *testing.T) {
	t.Parallel()
	for _, ov := range []jobs.Overlap{jobs.OverlapForbid, jobs.OverlapAllow, jobs.OverlapReplace} {
		t.Run(string(ov), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{})
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{sleep: 2500 * time.Millisecond})
			js := []*jobs.Job{testJob(t, "long", "* * * * * *", fn, func(j *jobs.Job) {
				j.Overlap = ov
				j.LockTTL = 900 * time.Millisecond // renewed every 300ms
			})}
			begin := nextSecond(300 * time.Millisecond)
			waitUntil(begin)
			var ins []*instance
			for i := range 3 {
				ins = append(ins, startInstance(t, srv, js, Options{Replica: fmt.Sprintf("r%d", i), ShutdownGrace: time.Second}))
			}
			waitUntil(begin.Add(6 * time.Second))
			for _, in := range ins {
				in.stop(t)
			}
			es := l.snapshot()
			checkOnce(t, es, begin)
			maxConcurrent, lost := 0, 0
			for _, a := range es {
				n := 0
				for _, b := range es {
					if !b.start.After(a.start) && b.end.After(a.start) {
						n++
					}
				}
				maxConcurrent = max(maxConcurrent, n)
				if errors.Is(a.cause, locker.ErrLeaseLost) {
					lost++
				}
			}
			c := srv.Client(t)
			skipped, replaced := 0, 0
			for s := begin.Unix(); s < begin.Unix()+6; s++ {
				m, _ := readMark(t, c, "long", unix(s))
				switch {
				case m.Record.Outcome == store.OutcomeSkipped && m.Record.Reason == store.ReasonOverlap:
					skipped++
				case m.Record.Outcome == store.OutcomeLeaseLost && m.Record.Reason == store.ReasonReplaced:
					replaced++
				}
			}
			t.Logf("runs %d, max concurrent %d, lease lost %d, skipped (overlap) marks %d, lease_lost (replaced) marks %d", len(es), maxConcurrent, lost, skipped, replaced)
			switch ov {
			case jobs.OverlapForbid:
				if maxConcurrent != 1 {
					t.Errorf("forbid: got %d concurrent runs, want 1", maxConcurrent)
				}
				if skipped < 2 {
					t.Errorf("forbid: got %d skipped (overlap) marks, want >= 2", skipped)
				}
			case jobs.OverlapAllow:
				if maxConcurrent < 2 || len(es) < 5 {
					t.Errorf("allow: got %d runs, %d concurrent, want >= 5 runs and >= 2 concurrent", len(es), maxConcurrent)
				}
			case jobs.OverlapReplace:
				// The replaced run is told at once and the new one starts
				// only once it stopped: runs never overlap.
				if lost < 3 || replaced < 3 {
					t.Errorf("replace: got %d runs cancelled with ErrLeaseLost, %d recorded lease_lost (replaced), want >= 3 each", lost, replaced)
				}
				if maxConcurrent != 1 {
					t.Errorf("replace: got %d concurrent runs, want 1", maxConcurrent)
				}
			}
		})
	}
}

// TestReplaceSupersededOnRecord: with overlap replace, a claim that waits
// for the run it replaces, and is replaced in turn by the next slot's
// claim before that run stops, never runs; its slot is recorded as skipped
// (overlap), not left with a running mark. The job ignores its context
// for 2.5 s, so each replaced run holds the lease past the next slots.
func TestReplaceSupersededOnRecord(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	fn := fmt.Sprintf("deaf%d", funcSeq.Add(1))
	jobs.Register(fn, func(ctx context.Context, r jobs.Run, _ struct{}) error {
		time.Sleep(2500 * time.Millisecond) // deaf to ctx
		return nil
	})
	js := []*jobs.Job{testJob(t, "deaf", "* * * * * *", fn, func(j *jobs.Job) {
		j.Overlap = jobs.OverlapReplace
		j.LockTTL = 900 * time.Millisecond
	})}
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	in := startInstance(t, srv, js, Options{Replica: "r0", ShutdownGrace: 5 * time.Second})
	waitUntil(begin.Add(6 * time.Second))
	in.stop(t)
	c := srv.Client(t)
	superseded := 0
	// The slots from the one after the start (the start's own came
	// before the job was first seen) to the last before the stop.
	for s := begin.Unix() + 1; s < begin.Unix()+6; s++ {
		m, ok := readMark(t, c, "deaf", time.Unix(s, 0))
		t.Logf("slot %d: %s %s", s-begin.Unix(), m.Record.Outcome, m.Record.Reason)
		switch {
		case !ok:
			t.Errorf("slot %d: no mark", s-begin.Unix())
		case m.Record.Outcome == store.OutcomeRunning:
			t.Errorf("slot %d: left with its running record after the replica stopped: %+v", s-begin.Unix(), m.Record)
		case m.Record.Outcome == store.OutcomeSkipped && m.Record.Reason == store.ReasonOverlap:
			superseded++
		}
	}
	if superseded == 0 {
		t.Errorf("slots skipped (overlap): got 0, want the claims replaced before they started")
	}
}

// TestLeaseDeletedCancelsRun: deleting a running job's lease key from
// outside cancels its context with cause locker.ErrLeaseLost, and the slot
// is recorded as lease_lost.
func TestLeaseDeletedCancelsRun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 30 * time.Second})
	js := []*jobs.Job{testJob(t, "forever", "@every 1h", fn, func(j *jobs.Job) {
		// Renewals every 1s; the local deadline is at least 2s after any
		// renewal, so a cancel within 1.5s of the delete can only come from
		// a renewal seeing the key gone, not from the deadline.
		j.LockTTL = 3 * time.Second
		j.CatchupWindow = time.Hour // so that it runs at start
	})}
	c := srv.Client(t)
	ctx := context.Background()
	seenBefore(t, c, "forever", time.Now().Add(-2*time.Hour))
	startInstance(t, srv, js, Options{Replica: "r0"})
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) == 1 })
	if err := c.Del(ctx, store.JobKeys("", "forever").Lease()).Err(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	waitFor(t, 3*time.Second, func() bool { return !l.snapshot()[0].end.IsZero() })
	e := l.snapshot()[0]
	if !errors.Is(e.cause, locker.ErrLeaseLost) {
		t.Errorf("cause: got %v, want %v", e.cause, locker.ErrLeaseLost)
	}
	if d := e.end.Sub(deleted); d > 1500*time.Millisecond {
		t.Errorf("cancelled %v after the delete, want within a renewal period (1s) plus margin", d)
	}
	var m store.Mark
	waitFor(t, 3*time.Second, func() bool {
		m, _ = readMark(t, c, "forever", e.slot)
		return m.Ended
	})
	if m.Record.Outcome != store.OutcomeLeaseLost {
		t.Errorf("recorded outcome: got %q, want %q", m.Record.Outcome, store.OutcomeLeaseLost)
	}
}

// waitFor polls cond every 10ms until it holds or d passes (real-time e2e
// waits only).
func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
