package scheduler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// gaugeValue is the value of the named gauge in reg (0 if absent).
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}

// counterSum adds up every sample of the named counter in reg.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestRedisOutage: Redis is killed for 3 s and restarted (AOF): nothing runs
// without a claim, no slot runs twice, every instance claims again, the
// most recent slot missed during the outage is caught up, and every slot
// that could not run is recorded once, as skipped (outage), once no
// replica may claim it any more.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{AOF: true})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 5 {
		js = append(js, testJob(t, fmt.Sprintf("out%d", i), "* * * * * *", fn, func(j *jobs.Job) {
			j.Overlap = jobs.OverlapAllow
			j.CatchupWindow = 0 // so that skips are recorded within the test
		}))
	}
	reg := prometheus.NewRegistry()
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	for i := range 3 {
		startInstance(t, srv, js, Options{Replica: fmt.Sprintf("r%d", i), Registerer: reg, MaxClockSkew: 500 * time.Millisecond})
	}
	waitUntil(begin.Add(3 * time.Second))
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(3 * time.Second)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	waitUntil(back.Add(4 * time.Second))
	es := l.snapshot()
	got := checkOnce(t, es, begin)
	replicas := map[string]bool{}
	for _, j := range js {
		var first *entry
		for i, e := range es {
			if e.job != j.Name || !e.start.After(killed) {
				continue
			}
			if e.start.Before(back.Add(-500 * time.Millisecond)) {
				t.Errorf("job %s slot %v ran at %v, while Redis was down", j.Name, e.slot, e.start)
			}
			if first == nil || e.start.Before(first.start) {
				first = &es[i]
			}
			if e.slot.Unix() > back.Unix()+1 {
				replicas[e.replica] = true
			}
		}
		if first == nil {
			t.Errorf("job %s: no run after the outage", j.Name)
			continue
		}
		// The first run after the outage is the catch-up of the most
		// recent slot missed while claims failed.
		if now := first.start.Unix(); first.slot.Unix() > now || first.slot.Unix() < now-1 || !first.slot.After(killed) {
			t.Errorf("job %s: first run after the outage is slot %v started at %v: want the most recent missed slot (<= 1s before its start)",
				j.Name, first.slot, first.start.UTC().Format(time.StampMilli))
		}
		for s := first.slot.Unix(); s <= back.Unix()+3; s++ {
			if _, ok := got[j.Name][s]; !ok {
				t.Errorf("job %s slot %d after recovery: got no run, want one", j.Name, s)
			}
		}
	}
	if len(replicas) < 2 {
		t.Errorf("replicas claiming after recovery: got %v, want at least 2 of 3", replicas)
	}
	if n := counterSum(t, reg, "redcron_claim_errors_total"); n == 0 {
		t.Error("redcron_claim_errors_total: got 0, want > 0")
	}
	// Every slot of the outage that did not run has one skip record. Its
	// window closed 1.5s after it (OnTime + max_clock_skew).
	c := srv.Client(t)
	recorded := 0
	for _, j := range js {
		for s := killed.Unix() + 1; s < back.Unix(); s++ {
			if _, ran := got[j.Name][s]; ran {
				continue
			}
			m, ok := readMark(t, c, j.Name, unix(s))
			switch {
			case !ok:
				t.Errorf("job %s slot %d during the outage: no run and no record, want a skip record", j.Name, s)
			case m.Record.Outcome != store.OutcomeSkipped || (m.Record.Reason != store.ReasonOutage && m.Record.Reason != store.ReasonAborted):
				t.Errorf("job %s slot %d during the outage: record %+v, want skipped (outage, or aborted for a claim that may have won)", j.Name, s, m.Record)
			default:
				recorded++
			}
		}
	}
	// The counters count every skip recorded, also the slots next to the
	// outage (a claim given up as Redis went or came back): compare them
	// with every skip record of the test's slots.
	skips := 0
	for _, j := range js {
		for s := killed.Unix() - 5; s <= time.Now().Unix(); s++ {
			if m, ok := readMark(t, c, j.Name, unix(s)); ok && m.Ended && m.Record.Outcome == store.OutcomeSkipped {
				skips++
			}
		}
	}
	if n := counterSum(t, reg, "redcron_skipped_slots_total"); n != float64(skips) {
		t.Errorf("redcron_skipped_slots_total: got %v, want %d (one per skip record, counted by the replica that recorded it)", n, skips)
	}
	t.Logf("slots of the outage recorded as skipped: %d", recorded)
}

// TestShutdown: Run stops claiming when its context ends, lets a job that
// ends within the grace finish, cancels one that does not with cause
// ErrShutdown, records both, and returns nil.
func TestShutdown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	short, long, tick := &ledger{}, &ledger{}, &ledger{}
	js := []*jobs.Job{
		testJob(t, "short", "@every 1h", registerLedgerFunc(short, behaviour{sleep: time.Second}), func(j *jobs.Job) { j.CatchupWindow = time.Hour }),
		testJob(t, "long", "@every 1h", registerLedgerFunc(long, behaviour{sleep: time.Minute}), func(j *jobs.Job) { j.CatchupWindow = time.Hour }),
		testJob(t, "tick", "* * * * * *", registerLedgerFunc(tick, behaviour{}), nil),
	}
	c := srv.Client(t)
	seenBefore(t, c, "short", time.Now().Add(-2*time.Hour))
	seenBefore(t, c, "long", time.Now().Add(-2*time.Hour))
	in := startInstance(t, srv, js, Options{Replica: "r0", ShutdownGrace: 2 * time.Second})
	waitFor(t, 5*time.Second, func() bool { return len(short.snapshot()) == 1 && len(long.snapshot()) == 1 })
	stopAt := time.Now()
	in.stop(t)
	took := time.Since(stopAt)
	if took < 1900*time.Millisecond || took > 4*time.Second {
		t.Errorf("Run returned %v after cancel, want about the 2s grace", took)
	}
	if e := short.snapshot()[0]; e.cause != nil || e.end.IsZero() {
		t.Errorf("short job: got cause %v, want a normal end within the grace", e.cause)
	}
	if e := long.snapshot()[0]; !errors.Is(e.cause, ErrShutdown) {
		t.Errorf("long job: got cause %v, want %v", e.cause, ErrShutdown)
	}
	// No claim goes out after shutdown began. A claim sent ahead of its
	// slot before that (at most maxClaimAhead ahead) that won still runs
	// at its slot, by design (see claimAndRun): only a later slot's run is
	// wrong. (The fresh clone's suite once stopped 84 ms before a slot whose
	// claim had won: its run started 86 ms after the stop.)
	for _, e := range tick.snapshot() {
		if e.start.After(stopAt.Add(50*time.Millisecond)) && e.slot.After(stopAt.Add(maxClaimAhead)) {
			t.Errorf("tick slot %v started at %v, after shutdown began at %v", e.slot, e.start, stopAt)
		}
	}
	for job, want := range map[string]string{"short": store.OutcomeOK, "long": store.OutcomeShutdown} {
		e := map[string]*ledger{"short": short, "long": long}[job].snapshot()[0]
		m, ok := readMark(t, c, job, e.slot)
		if !ok || !m.Ended {
			t.Fatalf("job %s: mark %+v (exists %v): want a final record", job, m, ok)
		}
		rec := m.Record
		if rec.Outcome != want || rec.Replica != "r0" || rec.Fence != e.fence {
			t.Errorf("job %s record: got %+v, want outcome %s, replica r0, fence %d", job, rec, want, e.fence)
		}
		if n, _ := c.ZCard(context.Background(), fmt.Sprintf("redcron:{%s}:history", job)).Result(); n != 1 {
			t.Errorf("job %s history: got %d entries, want 1", job, n)
		}
	}
}

// TestPausedDisabledAndStartCatchUp: a paused job runs nothing and its slots
// are recorded as skipped (paused); a disabled job never runs; at start the
// most recent slot within catchup_window runs, once, even when a second
// instance starts later, but only for a job the cluster saw before that
// slot: a new job catches up nothing from before its first sight.
func TestPausedDisabledAndStartCatchUp(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "redcron:{paused}:paused", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	paused, disabled, hourly, fresh := &ledger{}, &ledger{}, &ledger{}, &ledger{}
	hourlyWindow := func(j *jobs.Job) { j.CatchupWindow = time.Hour }
	js := []*jobs.Job{
		testJob(t, "paused", "* * * * * *", registerLedgerFunc(paused, behaviour{}), nil),
		testJob(t, "disabled", "* * * * * *", registerLedgerFunc(disabled, behaviour{}), func(j *jobs.Job) { j.Enabled = false }),
		testJob(t, "hourly", "@every 1h", registerLedgerFunc(hourly, behaviour{}), hourlyWindow),
		testJob(t, "fresh", "@every 1h", registerLedgerFunc(fresh, behaviour{}), hourlyWindow),
	}
	seenBefore(t, c, "hourly", time.Now().Add(-2*time.Hour))
	reg := prometheus.NewRegistry()
	startInstance(t, srv, js, Options{Replica: "r0", Registerer: reg})
	waitFor(t, 3*time.Second, func() bool { return len(hourly.snapshot()) == 1 })
	startInstance(t, srv, js, Options{Replica: "r1", Registerer: reg})
	time.Sleep(2500 * time.Millisecond)
	if n := len(paused.snapshot()); n != 0 {
		t.Errorf("paused job: got %d runs, want 0", n)
	}
	if n := len(disabled.snapshot()); n != 0 {
		t.Errorf("disabled job: got %d runs, want 0", n)
	}
	if es := hourly.snapshot(); len(es) != 1 || !es[0].slot.Equal(unix(time.Now().Unix()/3600*3600)) {
		t.Errorf("hourly job at start: got %d runs (%v), want exactly 1 for the current hour", len(es), es)
	}
	if es := fresh.snapshot(); len(es) != 0 {
		t.Errorf("new hourly job at start: got %d runs (%v), want none: its slot is before the cluster first saw it", len(es), es)
	}
	if _, ok := readMark(t, c, "fresh", unix(time.Now().Unix()/3600*3600)); ok {
		t.Errorf("new hourly job: its slot before first sight has a mark, want none (not a skip, not a run)")
	}
	keys, _ := c.Keys(ctx, "redcron:{paused}:slot:*").Result()
	if len(keys) < 2 {
		t.Errorf("paused job: got %d slot marks, want >= 2", len(keys))
	}
	for _, k := range keys {
		h, _ := c.HGetAll(ctx, k).Result()
		m, _, err := store.ParseMark(h)
		if err != nil || m.Record.Outcome != store.OutcomeSkipped || m.Record.Reason != store.ReasonPaused || m.Token != "" {
			t.Errorf("%s: got %+v (%v), want a skip (paused) that nobody claimed", k, m, err)
		}
	}
	if n := counterSum(t, reg, "redcron_skipped_slots_total"); n < 2 {
		t.Errorf("skips counted: got %v, want >= 2", n)
	}
	if ks, _ := c.Keys(ctx, "redcron:{disabled}:*").Result(); len(ks) != 0 {
		t.Errorf("disabled job wrote keys %v, want none", ks)
	}
}
