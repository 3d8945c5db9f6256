package scheduler

// Issue 7's edges, on real redis-server, with the faults injected for real:
// replies held by a proxy, a replica cut off from Redis, configs that
// differ between replicas, clocks stepped, a finish that does not land.

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// checkEvery asserts that every job ran every slot in [from, to] exactly
// once (first attempts), and never before its slot.
func checkEvery(t *testing.T, es []entry, js []*jobs.Job, from, to time.Time) (perReplica map[string]int) {
	t.Helper()
	from = from.Truncate(time.Second)
	got := checkOnce(t, es, from)
	perReplica = map[string]int{}
	for _, e := range es {
		if e.start.Before(e.slot) {
			t.Errorf("job %s slot %v started early, at %v", e.job, e.slot.Format(time.TimeOnly), e.start.Format("15:04:05.000"))
		}
	}
	for _, j := range js {
		for s := from; !s.After(to); s = s.Add(time.Second) {
			e, ok := got[j.Name][s.Unix()]
			if !ok {
				t.Errorf("job %s slot %v: no run, want one", j.Name, s.Format(time.TimeOnly))
				continue
			}
			perReplica[e.replica]++
		}
	}
	return perReplica
}

// TestHeldReplyRunsOnce: one of three replicas gets the replies to its
// claims 900 ms late (the claims run in Redis, the replies come after the
// read timeout), six times, when the claims of a slot go out (its own
// claim-ahead before the slot, read before each hold). A claim that may have won is
// retried as itself: every slot still runs exactly once, none is lost.
func TestHeldReplyRunsOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 8 {
		js = append(js, testJob(t, fmt.Sprintf("held%d", i), "* * * * * *", fn, nil))
	}
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	held := prometheus.NewRegistry()
	hin := startInstanceAt(t, p.Addr(), js, Options{Replica: "held", Registerer: held})
	startInstance(t, srv, js, Options{Replica: "r1"})
	startInstance(t, srv, js, Options{Replica: "r2"})
	first := begin.Truncate(time.Second).Add(2 * time.Second)
	for i := range 6 {
		// Claims go out the held replica's claim-ahead before their slot:
		// claimAhead, more on a loaded machine (claimLead).
		slot := first.Add(time.Duration(2*i) * time.Second)
		at := claimsOut(hin.s, slot)
		waitUntil(at.Add(-2 * time.Millisecond))
		p.Hold(redistest.ToClient)
		waitUntil(at.Add(900 * time.Millisecond))
		p.Release(redistest.ToClient)
	}
	end := first.Add(12 * time.Second)
	waitUntil(end.Add(time.Second))
	// Each slot runs once. With work sharing the held replica alone claims
	// its share of a slot whose reply is held: a claim that won runs late
	// (retried as itself), and may then still hold the lease when the next
	// slot comes, which overlap forbid records as skipped. That skip is
	// the only miss allowed, and only right after a late run of held.
	es := l.snapshot()
	got := checkOnce(t, es, begin.Add(time.Second).Truncate(time.Second))
	c := newClient(t, srv)
	per := map[string]int{}
	late := 0
	for _, j := range js {
		for s := begin.Add(time.Second).Truncate(time.Second); !s.After(end); s = s.Add(time.Second) {
			if e, ok := got[j.Name][s.Unix()]; ok {
				per[e.replica]++
				continue
			}
			prev, ran := got[j.Name][s.Add(-time.Second).Unix()]
			m, _ := readMark(t, c, j.Name, s)
			if ran && prev.replica == "held" && prev.start.After(s.Add(-100*time.Millisecond)) &&
				m.Ended && m.Record.Outcome == store.OutcomeSkipped && m.Record.Reason == store.ReasonOverlap {
				late++
				continue
			}
			t.Errorf("job %s slot %v: no run, want one (record %+v)", j.Name, s.Format(time.TimeOnly), m.Record)
		}
	}
	for _, e := range es {
		if e.start.Before(e.slot) {
			t.Errorf("job %s slot %v started early, at %v", e.job, e.slot.Format(time.TimeOnly), e.start.Format("15:04:05.000"))
		}
	}
	t.Logf("slots skipped as overlap after a late run of held: %d", late)
	if n := counterSum(t, held, "redcron_claim_errors_total"); n == 0 {
		t.Errorf("claim errors on the held replica: got 0, want > 0 (the fault did not bite)")
	}
	if per["held"] == 0 {
		t.Errorf("runs on the held replica: got 0, want some (its claims won, then were retried as themselves)")
	}
	t.Logf("runs per replica %v; claim errors on the held replica %v", per, counterSum(t, held, "redcron_claim_errors_total"))
}

// TestCutLongerThanLease: a replica running a long job is cut off from
// Redis for twice its lease. Its run is cancelled by its local lease
// deadline before the lease can expire in Redis, so another replica starts
// the job only after it stopped (no overlapping runs); the short job keeps
// running on the healthy replica (no slot lost), and the cut replica claims
// again once the cut heals.
func TestCutLongerThanLease(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	long, tick := &ledger{}, &ledger{}
	js := []*jobs.Job{
		testJob(t, "long", "* * * * * *", registerLedgerFunc(long, behaviour{sleep: time.Minute}), func(j *jobs.Job) {
			j.LockTTL = 1500 * time.Millisecond
		}),
		testJob(t, "tick", "* * * * * *", registerLedgerFunc(tick, behaviour{sleep: 20 * time.Millisecond}), nil),
	}
	cut := startInstanceAt(t, p.Addr(), js, Options{Replica: "cut", ShutdownGrace: time.Second})
	waitFor(t, 5*time.Second, func() bool { return len(long.snapshot()) == 1 })
	healthy := startInstance(t, srv, js, Options{Replica: "healthy", ShutdownGrace: time.Second})
	time.Sleep(1500 * time.Millisecond)
	p.Block(true)
	cutAt := time.Now()
	time.Sleep(3 * time.Second)
	p.Block(false)
	healed := time.Now()
	// Once healed, the healthy replica goes away: the cut one must claim
	// again by itself (its claims race the healthy one's otherwise).
	time.Sleep(time.Second)
	healthy.stop(t)
	time.Sleep(3 * time.Second)
	cut.stop(t)

	runs := long.snapshot()
	if len(runs) < 2 || runs[0].replica != "cut" {
		t.Fatalf("long runs: got %+v, want the cut replica's first, then another", runs)
	}
	if runs[0].end.IsZero() || !errors.Is(runs[0].cause, locker.ErrLeaseLost) || runs[0].end.Before(cutAt) {
		t.Errorf("the cut replica's run: ended %v with cause %v, want cancelled with ErrLeaseLost after the cut", runs[0].end, runs[0].cause)
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].start.Before(runs[i-1].end) {
			t.Errorf("long runs overlap: %s started at %v, before %s's run ended at %v",
				runs[i].replica, runs[i].start.Format("15:04:05.000"), runs[i-1].replica, runs[i-1].end.Format("15:04:05.000"))
		}
	}
	per := checkEvery(t, tick.snapshot(), js[1:], cutAt.Truncate(time.Second).Add(time.Second), healed.Truncate(time.Second))
	afterHeal := 0
	for _, e := range tick.snapshot() {
		if e.replica == "cut" && e.start.After(healed) {
			afterHeal++
		}
	}
	if afterHeal == 0 {
		t.Errorf("tick runs on the cut replica after the cut healed: got 0, want some")
	}
	t.Logf("long runs %d; tick runs during the cut per replica %v; cut replica's tick runs after healing %d", len(runs), per, afterHeal)
}

// TestRollingConfigChange: a slot ran under one replica's catchup_window,
// jitter and max_clock_skew; that replica stopped; after the slot's mark
// expired (its retention came from the old settings), a replica with
// larger settings starts and tries to catch the slot up. The job's
// high-water slot refuses it: the slot never runs twice.
func TestRollingConfigChange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		newJob func(*jobs.Job)
		skew   time.Duration
	}{
		{"catchup_window 0s to 1m", func(j *jobs.Job) { j.CatchupWindow = time.Minute }, 100 * time.Millisecond},
		{"jitter 0s to 5s", func(j *jobs.Job) { j.CatchupWindow = time.Minute; j.Jitter = 5 * time.Second }, 100 * time.Millisecond},
		{"max_clock_skew 100ms to 10s", func(j *jobs.Job) { j.CatchupWindow = time.Minute }, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{})
			c := srv.Client(t)
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{})
			old := []*jobs.Job{testJob(t, "backup", "@every 10s", fn, func(j *jobs.Job) { j.CatchupWindow = 0 })}
			upd := []*jobs.Job{testJob(t, "backup", "@every 10s", fn, tc.newJob)}
			slot := time.Unix(time.Now().Add(time.Second).Unix()/10*10+10, 0)
			waitUntil(slot.Add(-500 * time.Millisecond))
			a := startInstance(t, srv, old, Options{Replica: "old", MaxClockSkew: 100 * time.Millisecond})
			waitFor(t, 3*time.Second, func() bool { return len(l.snapshot()) == 1 })
			a.stop(t)
			if m, ok := readMark(t, c, "backup", slot); !ok || m.Record.Outcome != store.OutcomeOK {
				t.Fatalf("slot %v under the old settings: mark %+v (exists %v), want ok", slot, m, ok)
			}
			waitFor(t, 8*time.Second, func() bool { _, ok := readMark(t, c, "backup", slot); return !ok })
			if now := time.Now(); !now.Before(slot.Add(9 * time.Second)) {
				t.Fatalf("the mark outlived its retention until %v: too late to test within the slot", now)
			}
			startInstance(t, srv, upd, Options{Replica: "new", MaxClockSkew: tc.skew})
			waitUntil(slot.Add(9500 * time.Millisecond))
			for _, e := range l.snapshot() {
				if e.replica == "new" && e.slot.Equal(slot) {
					t.Fatalf("slot %v ran again on the new replica (fence %d): the slot was claimed before", slot, e.fence)
				}
			}
			if f := c.HGet(context.Background(), store.JobKeys("", "backup").Meta(), "fence").Val(); f != "1" {
				t.Errorf("fence after the new replica started: got %s, want 1 (no second claim)", f)
			}
		})
	}
}

// TestClockStep: one of three replicas has its clock 10 s ahead. It claims
// nothing while it is off (and says so through Ready), so nothing runs
// early or twice and the two healthy replicas run every slot; once its
// clock is back it claims again by itself.
func TestClockStep(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 5 {
		js = append(js, testJob(t, fmt.Sprintf("step%d", i), "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 }))
	}
	clk := &jumpClock{base: RealClock()}
	clk.off.Store(int64(10 * time.Second))
	begin := nextSecond(300 * time.Millisecond)
	waitUntil(begin)
	opts := func(name string) Options {
		return Options{Replica: name, MaxClockSkew: 200 * time.Millisecond, ClockCheck: 200 * time.Millisecond}
	}
	o := opts("ahead")
	o.Clock = clk
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	ahead := startInstance(t, srv, js, o)
	startInstance(t, srv, js, opts("r1"))
	startInstance(t, srv, js, opts("r2"))
	waitFor(t, 3*time.Second, func() bool { return ahead.s.Ready(context.Background()) != nil && measured(ahead.s) })
	t.Logf("ahead replica not ready: %v", ahead.s.Ready(context.Background()))
	if g := gaugeValue(t, reg, "redcron_clock_offset_seconds"); g > -9.5 || g < -10.5 {
		t.Errorf("redcron_clock_offset_seconds: got %v, want about -10", g)
	}
	waitUntil(begin.Add(6 * time.Second))
	clk.off.Store(0)
	back := time.Now()
	waitFor(t, 3*time.Second, func() bool { return ahead.s.Ready(context.Background()) == nil })
	waitUntil(back.Add(4 * time.Second))
	end := back.Add(3 * time.Second).Truncate(time.Second)
	per := checkEvery(t, l.snapshot(), js, begin.Add(time.Second), end)
	while, after := 0, 0
	for _, e := range l.snapshot() {
		if e.replica == "ahead" {
			if e.start.Before(back) {
				while++
			} else {
				after++
			}
		}
	}
	if while != 0 {
		t.Errorf("runs on the replica 10s ahead while it was off: got %d, want 0", while)
	}
	if after == 0 {
		t.Errorf("runs on that replica once its clock was back: got 0, want some")
	}
	t.Logf("runs per replica %v; the stepped replica ran %d after its clock came back", per, after)
}

// TestClockOffAloneRecordsClock: a single replica whose clock is off claims
// nothing; once no replica may claim its slots any more, it records each
// as skipped (clock), since nobody ran them. 5 s behind, it comes to each
// slot 5 s late on Redis's clock; it times the record on Redis's clock
// (the offset it measured), since its own would send it 1.2 s later still,
// past the end of the window in which an absent mark proves that nobody
// claimed the slot (5.9 s after the slot here: recorder.markLasts). 8 s
// behind, it comes to each slot after that window: the job's high-water
// slot, below the slot since nobody decided a later one, still proves it.
func TestClockOffAloneRecordsClock(t *testing.T) {
	t.Parallel()
	for _, behind := range []time.Duration{5 * time.Second, 8 * time.Second} {
		t.Run(behind.String(), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{})
			l := &ledger{}
			js := []*jobs.Job{testJob(t, "alone", "* * * * * *", registerLedgerFunc(l, behaviour{}), func(j *jobs.Job) { j.CatchupWindow = 0 })}
			clk := &jumpClock{base: RealClock()}
			clk.off.Store(int64(-behind))
			reg := prometheus.NewRegistry()
			startInstance(t, srv, js, Options{Replica: "behind", Clock: clk, MaxClockSkew: 200 * time.Millisecond, Registerer: reg})
			c := srv.Client(t)
			begin := time.Now()
			waitFor(t, 15*time.Second, func() bool { return counterSum(t, reg, "redcron_skipped_slots_total") >= 2 })
			if n := len(l.snapshot()); n != 0 {
				t.Errorf("runs with the clock %v behind: got %d, want 0", behind, n)
			}
			keys, _ := c.Keys(context.Background(), "redcron:{alone}:slot:*").Result()
			clocked := 0
			for _, k := range keys {
				h := c.HGetAll(context.Background(), k).Val()
				m, _, err := store.ParseMark(h)
				switch {
				case err == nil && m.Record.Outcome == store.OutcomeSkipped && m.Record.Reason == store.ReasonClock:
					clocked++
				case err == nil && m.Record.Outcome == store.OutcomeSkipped && m.Record.Reason == store.ReasonLate && m.Token != "":
					// a claim sent before the first clock measurement,
					// refused by Redis as past its window on the server's
					// clock
				default:
					t.Errorf("%s: got %+v (%v), want a skip (clock), or (late) refused by Redis", k, m, err)
				}
			}
			if clocked < 2 {
				t.Errorf("slots recorded as skipped (clock): got %d of %d marks, want >= 2", clocked, len(keys))
			}
			t.Logf("%d slots recorded as skipped (clock) within %v", clocked, time.Since(begin).Round(time.Millisecond))
		})
	}
}

// TestFinishLostOnce: the replica is cut off from Redis right as its run
// returns, so the first Finish cannot land. It is retried with the same
// token once the cut heals: the outcome is recorded once, the lease is
// released, and the next slot is not skipped as overlap.
func TestFinishLostOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	var cuts atomic.Int32
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 300 * time.Millisecond, done: func(jobs.Run) {
		if cuts.Add(1) == 1 {
			p.Block(true)
			time.AfterFunc(1500*time.Millisecond, func() { p.Block(false) })
		}
	}})
	js := []*jobs.Job{testJob(t, "fin", "@every 3s", fn, nil)}
	c := srv.Client(t)
	reg := prometheus.NewRegistry()
	startInstanceAt(t, p.Addr(), js, Options{Replica: "r0", Registerer: reg})
	waitFor(t, 8*time.Second, func() bool { return len(l.snapshot()) >= 1 })
	first := l.snapshot()[0]
	var m store.Mark
	waitFor(t, 5*time.Second, func() bool { m, _ = readMark(t, c, "fin", first.slot); return m.Ended })
	if m.Record.Outcome != store.OutcomeOK || m.Record.Fence != first.fence {
		t.Errorf("recorded after a lost finish: got %+v, want ok with fence %d", m.Record, first.fence)
	}
	hist := c.ZRevRange(context.Background(), store.JobKeys("", "fin").History(), 0, -1).Val()
	n := 0
	for _, h := range hist {
		if r, err := store.ParseRecord(h); err == nil && r.Fence == first.fence {
			n++
		}
	}
	if n != 1 {
		t.Errorf("history entries of the run: got %d, want 1", n)
	}
	waitFor(t, 8*time.Second, func() bool { return len(l.snapshot()) >= 2 })
	if next := l.snapshot()[1]; !next.slot.Equal(first.slot.Add(3 * time.Second)) {
		t.Errorf("run after the lost finish: slot %v, want the next slot %v (not skipped as overlap)", next.slot, first.slot.Add(3*time.Second))
	}
	if s := counterSum(t, reg, "redcron_skipped_slots_total"); s != 0 {
		t.Errorf("skips: got %v, want 0", s)
	}
}

// TestManualAtSlotSecond: a manual trigger at the very second of a
// scheduled slot runs beside it, under its own mark and fence: both runs
// happen and are told apart by their manual flag, in jobs.Run and in the
// records.
func TestManualAtSlotSecond(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	js := []*jobs.Job{testJob(t, "both", "@every 5s", registerLedgerFunc(l, behaviour{sleep: 100 * time.Millisecond}), func(j *jobs.Job) {
		j.Overlap = jobs.OverlapAllow
	})}
	in := startInstance(t, srv, js, Options{Replica: "r0"})
	slot := time.Unix(time.Now().Add(time.Second).Unix()/5*5+5, 0)
	waitUntil(slot.Add(5 * time.Millisecond))
	mslot, mfence, err := in.s.Trigger(context.Background(), "both")
	if err != nil {
		t.Fatalf("Trigger: %v", err)
	}
	if !mslot.Equal(slot) {
		t.Fatalf("manual run's slot: got %v, want the scheduled slot's second %v", mslot, slot)
	}
	var sched, manual *entry
	waitFor(t, 3*time.Second, func() bool {
		sched, manual = nil, nil
		for _, e := range l.snapshot() {
			if e.slot.Equal(slot) {
				if e.manual {
					manual = &e
				} else {
					sched = &e
				}
			}
		}
		return sched != nil && manual != nil
	})
	if sched == nil || manual == nil || manual.fence != mfence || sched.fence == manual.fence {
		t.Fatalf("runs at %v: scheduled %+v, manual %+v; want one of each with distinct fences", slot, sched, manual)
	}
	c := srv.Client(t)
	var m store.Mark
	waitFor(t, 3*time.Second, func() bool { m, _ = readMark(t, c, "both", slot); return m.Ended })
	if m.Record.Manual || m.Fence != sched.fence {
		t.Errorf("the slot's mark: got %+v, want the scheduled run's record (fence %d, not manual)", m.Record, sched.fence)
	}
	var recs []store.Record
	waitFor(t, 3*time.Second, func() bool {
		recs = nil
		for _, h := range c.ZRevRange(context.Background(), store.JobKeys("", "both").History(), 0, -1).Val() {
			if r, err := store.ParseRecord(h); err == nil && r.Slot.Equal(slot) {
				recs = append(recs, r)
			}
		}
		return len(recs) == 2
	})
	if recs[0].Manual == recs[1].Manual {
		t.Errorf("history records of the slot's second: got %+v, want one manual and one scheduled", recs)
	}
}

// TestQuorumServerTime: in quorum mode "the server's clock" is that of a
// majority of nodes. With one master of three 10 s ahead, replicas stay
// ready and every slot runs once (the odd node refuses, the majority
// grants); with two of three ahead, replicas see their clock as off and
// claim nothing.
func TestQuorumServerTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ahead  int
		claims bool
	}{
		{"one master of three ahead", 1, true},
		{"two masters of three ahead", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var clients []locker.Client
			for i := range 3 {
				var o redistest.Options
				if i < tc.ahead {
					o.ClockOffset = 10 * time.Second
				}
				clients = append(clients, newClient(t, redistest.Start(t, o)))
			}
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{})
			var js []*jobs.Job
			for i := range 3 {
				js = append(js, testJob(t, fmt.Sprintf("qt%d", i), "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 }))
			}
			begin := nextSecond(300 * time.Millisecond)
			waitUntil(begin)
			var ins []*Scheduler
			for i := range 2 {
				q, err := locker.NewQuorum(clients, locker.Options{Retries: 3, RetryDelay: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				s := runScheduler(t, js, q, Options{Replica: fmt.Sprintf("q%d", i), MaxClockSkew: 500 * time.Millisecond, ClockCheck: 200 * time.Millisecond})
				ins = append(ins, s)
			}
			time.Sleep(time.Second)
			for _, s := range ins {
				if err := s.Ready(context.Background()); (err == nil) != tc.claims {
					t.Errorf("%s Ready: got %v, want ready %v", s.Replica(), err, tc.claims)
				}
			}
			end := begin.Add(5 * time.Second)
			waitUntil(end.Add(time.Second))
			if tc.claims {
				checkEvery(t, l.snapshot(), js, begin.Add(time.Second), end)
			} else if n := len(l.snapshot()); n != 0 {
				t.Errorf("runs with a majority of masters 10s ahead: got %d, want 0", n)
			}
		})
	}
}
