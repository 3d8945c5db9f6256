package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// recorderScheduler builds (does not run) a scheduler of js on srv for
// the recorder's tests: every job was known to the cluster a minute
// before slot, and its warn lines go to the returned buffer.
func recorderScheduler(t *testing.T, srv *redistest.Server, replica string, js []*jobs.Job, slot time.Time) (*Scheduler, *lockedBuffer) {
	t.Helper()
	return recorderSchedulerOn(t, newClient(t, srv), Options{Replica: replica}, js, slot)
}

// recorderSchedulerOn is recorderScheduler on client c (a proxy's, say)
// with opts, whose Logger it sets.
func recorderSchedulerOn(t *testing.T, c *redis.Client, opts Options, js []*jobs.Job, slot time.Time) (*Scheduler, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := zerolog.New(logs)
	opts.Logger = &log
	s, err := New(js, newLocker(t, c), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range s.jobs {
		st.since = slot.Add(-time.Minute)
	}
	return s, logs
}

// TestRecorderBatchesAndBounds: skips queued faster than one round trip
// each are all written (in batches, against a real Redis); past the
// queue's bound the excess is dropped, counted and logged, not silently,
// and so is a skip found after its run's mark could have expired once a
// later slot of the job was decided, and one older than the job's history
// keeps.
func TestRecorderBatchesAndBounds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const n, bound = 600, 500
	js := make([]*jobs.Job, n)
	for i := range js {
		js[i] = testJob(t, fmt.Sprintf("rec%03d", i), "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })
	}
	// A slot whose window has closed (closes = slot + 1s + 2s skew) and
	// whose mark may still be written (retention 10s).
	slot := time.Now().Truncate(time.Second).Add(-5 * time.Second)
	s, logs := recorderScheduler(t, srv, "rec", js, slot)
	r := s.recorder
	r.max = bound
	for _, st := range s.jobs {
		r.add(st, slot, store.ReasonOutage, nil)
	}
	// Past retention (10s) + skew (2s), with a later slot decided (the
	// high-water is at slot): too late to tell whether it ran.
	c := newClient(t, srv)
	setHighWater(t, c, s, slot)
	r.max += 3
	old := slot.Add(-30 * time.Second)
	r.add(s.jobs[0], old, store.ReasonOutage, nil)
	// Older than the job's history keeps (7 days): dropped unsent, also
	// a bid whose withdrawal would fail (sent through a proxy that cuts
	// its replica off) and be retried.
	aged := slot.Add(-8 * 24 * time.Hour)
	r.add(s.jobs[1], aged, store.ReasonOutage, nil)
	proxy := redistest.StartProxyFor(t, srv)
	proxy.Block(true)
	cut, _ := recorderSchedulerOn(t, clientAt(t, proxy.Addr()), Options{Replica: "cut"}, js, slot)
	bid, err := cut.locker.Bid(cut.claimFor(cut.jobs[2], aged, 0, maxClaimAhead, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bid.Obtain(context.Background()); err == nil {
		t.Fatal("a claim through the cut: got a lease, want an I/O error")
	}
	r.add(s.jobs[2], aged, store.ReasonAborted, bid)
	ctx, cancel := context.WithCancel(context.Background())
	stop := r.start(ctx)
	t.Cleanup(cancel)
	written := func() int {
		n := 0
		for _, st := range s.jobs {
			n += int(c.Exists(context.Background(), s.keysOf(st).Mark(slot)).Val())
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); written() < bound && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stop(time.Now())

	recorded, none := 0, 0
	for _, st := range s.jobs {
		h := c.HGetAll(context.Background(), s.keysOf(st).Mark(slot)).Val()
		m, ok, err := store.ParseMark(h)
		switch {
		case err != nil:
			t.Errorf("%s: %v", st.job.Name, err)
		case !ok:
			none++
		case m.Record.Outcome != store.OutcomeSkipped || m.Record.Reason != store.ReasonOutage:
			t.Errorf("%s: record %+v, want skipped (outage)", st.job.Name, m.Record)
		default:
			recorded++
		}
	}
	if recorded != bound || none != n-bound {
		t.Errorf("records: got %d written and %d missing, want %d and %d", recorded, none, bound, n-bound)
	}
	if want := fmt.Sprintf(`"slots":%d,"max_pending":%d,"message":"skip records dropped: too many pending"`, n-bound, bound+3); !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
	if want := `"slots":1,"message":"skip records dropped: written too late to tell whether the slot ran"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
	if want := `"slots":2,"message":"skip records dropped: older than the job's history keeps"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
	if _, ok := readMark(t, c, s.jobs[0].job.Name, old); ok {
		t.Errorf("the slot past its retention: got a record, want none")
	}
	if _, ok := readMark(t, c, s.jobs[1].job.Name, aged); ok {
		t.Errorf("the slot older than the history keeps: got a record, want none")
	}
}

// TestRecorderFullGivesUpOldest: a full queue gives up its earliest skip
// if that one's mark may be gone (counted too late) to take a new one; if
// the earliest is still within its mark's window, the new one is dropped
// (counted as too many pending).
func TestRecorderFullGivesUpOldest(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	js := []*jobs.Job{testJob(t, "full", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })}
	now := time.Now().Truncate(time.Second)
	s, logs := recorderScheduler(t, srv, "full", js, now.Add(-time.Minute))
	r := s.recorder
	r.max = 2
	// Retention 10s + 2s skew: 30s ago its mark may be gone; 5s ago not.
	old, fresh := now.Add(-30*time.Second), now.Add(-5*time.Second)
	r.add(s.jobs[0], old, store.ReasonOutage, nil)
	r.add(s.jobs[0], fresh, store.ReasonOutage, nil)
	r.add(s.jobs[0], fresh.Add(time.Second), store.ReasonOutage, nil)   // gives up old
	r.add(s.jobs[0], fresh.Add(2*time.Second), store.ReasonOutage, nil) // dropped
	var got []time.Time
	r.mu.Lock()
	for _, p := range r.queue {
		got = append(got, p.slot)
	}
	r.mu.Unlock()
	slices.SortFunc(got, time.Time.Compare)
	if want := []time.Time{fresh, fresh.Add(time.Second)}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("queued slots: got %v, want %v", got, want)
	}
	r.logDrops()
	for _, want := range []string{
		`"slots":1,"max_pending":2,"message":"skip records dropped: too many pending"`,
		`"slots":1,"message":"skip records dropped: written too late to tell whether the slot ran"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log: no line with %s; got %s", want, logs.String())
		}
	}
}

// TestRecorderCountsLateAtRedis: a record that this replica's clock still
// allows but Redis's, 5s ahead, finds past its window (the run's mark may
// be gone) is not written once a later slot of the job was decided, and is
// counted in the "too late" log line, not dropped silently; while no later
// slot was decided (the job's high-water is below the slot), it is still
// written.
func TestRecorderCountsLateAtRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{ClockOffset: 5 * time.Second})
	for _, tc := range []struct {
		name    string
		decided time.Duration // the high-water slot, from the slot; 0: none
		written bool
	}{
		{"a later slot decided", time.Second, false},
		{"no later slot decided", 0, true},
		{"an earlier slot decided", -time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("late-at-redis-%d", tc.decided/time.Second)
			js := []*jobs.Job{testJob(t, name, "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })}
			// Here: closed (slot + 1s + 2s skew) and within retention
			// (10s) + skew; on Redis's clock, 13s after the slot: past
			// retention.
			slot := time.Now().Truncate(time.Second).Add(-8 * time.Second)
			s, logs := recorderScheduler(t, srv, "late", js, slot)
			c := newClient(t, srv)
			if tc.decided != 0 {
				setHighWater(t, c, s, slot.Add(tc.decided))
			}
			lateSkip(t, s, logs, c, slot, store.ReasonOutage, nil, tc.written)
		})
	}
}

// TestRecorderFlushesAtShutdown: at shutdown the recorder writes the
// skips already due (here it never ran a round before), and logs those
// not yet due, which other replicas may still claim.
func TestRecorderFlushesAtShutdown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	js := []*jobs.Job{
		testJob(t, "flush-a", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
		testJob(t, "flush-b", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
	}
	slot := time.Now().Truncate(time.Second).Add(-5 * time.Second)
	s, logs := recorderScheduler(t, srv, "flush", js, slot)
	r := s.recorder
	r.add(s.jobs[0], slot, store.ReasonOutage, nil)
	r.add(s.jobs[1], slot.Add(time.Minute), store.ReasonOutage, nil) // due in a minute
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run is over before the recorder's first round
	r.start(ctx)(time.Now())

	c := newClient(t, srv)
	if m, ok := readMark(t, c, "flush-a", slot); !ok || m.Record.Reason != store.ReasonOutage {
		t.Errorf("the due skip: got %+v (present %v), want it written at shutdown", m.Record, ok)
	}
	if want := `"slots":1,"message":"shutdown: skip records not yet due are not written"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
}

// TestRecorderDrainsAtShutdown: at shutdown the recorder also writes the
// skips that come due before the deadline it is given, each once due, and
// leaves (and logs) only one due after it, which other replicas may still
// claim by then.
func TestRecorderDrainsAtShutdown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	js := []*jobs.Job{
		testJob(t, "drain-due", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
		testJob(t, "drain-soon", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
		testJob(t, "drain-late", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
	}
	// closes = slot + 1s (OnTime) + 2s (skew): due already; due in 1 to 2
	// s; due in about a minute.
	now := time.Now().Truncate(time.Second)
	due, soon := now.Add(-5*time.Second), now.Add(-time.Second)
	s, logs := recorderScheduler(t, srv, "drain", js, due)
	r := s.recorder
	r.add(s.jobs[0], due, store.ReasonOutage, nil)
	r.add(s.jobs[1], soon, store.ReasonOutage, nil)
	r.add(s.jobs[2], soon.Add(time.Minute), store.ReasonOutage, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run is over before the recorder's first round
	r.start(ctx)(time.Now().Add(10 * time.Second))

	c := newClient(t, srv)
	for _, tc := range []struct {
		job  string
		slot time.Time
	}{{"drain-due", due}, {"drain-soon", soon}} {
		if m, ok := readMark(t, c, tc.job, tc.slot); !ok || m.Record.Reason != store.ReasonOutage {
			t.Errorf("%s: got %+v (present %v), want the skip written at shutdown", tc.job, m.Record, ok)
		}
	}
	if _, ok := readMark(t, c, "drain-late", soon.Add(time.Minute)); ok {
		t.Error("drain-late: got a record, want none: it comes due after the deadline")
	}
	if want := `"slots":1,"message":"shutdown: skip records not yet due are not written"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: got %s, want a line with %s", logs.String(), want)
	}
}

// TestShutdownRightAfterOutage: a replica stopped as Redis comes back
// from an outage (cut off through a proxy for 3 s) writes, within its
// shutdown grace, the skip records of the outage's last slots, which come
// due after the stop (3 s after each slot: OnTime and the 2 s skew):
// every slot of the outage ends with a run or a record.
func TestShutdownRightAfterOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	px := redistest.StartProxyFor(t, srv)
	l := &ledger{}
	js := []*jobs.Job{testJob(t, "drain", "* * * * * *", registerLedgerFunc(l, behaviour{}), func(j *jobs.Job) { j.CatchupWindow = 0 })}
	in := startInstanceAt(t, px.Addr(), js, Options{Replica: "r0", ShutdownGrace: 10 * time.Second})
	// Cut 700 ms into a second: the next slot's claim, sent up to
	// maxClaimAhead before it, goes out during the outage.
	waitUntil(nextSecond(time.Second + 700*time.Millisecond))
	px.Block(true)
	cut := time.Now()
	time.Sleep(3 * time.Second)
	px.Block(false)
	back := time.Now()
	in.stop(t)

	ran := map[int64]bool{}
	for _, e := range l.snapshot() {
		ran[e.slot.Unix()] = true
	}
	c := srv.Client(t)
	skipped := 0
	for s := cut.Unix() + 1; s < back.Unix(); s++ {
		if ran[s] {
			continue
		}
		m, ok := readMark(t, c, "drain", unix(s))
		switch {
		case !ok || !m.Ended:
			t.Errorf("slot %v of the outage: no run and no final record (mark %+v, present %v), want a skip record", unix(s), m, ok)
		case m.Record.Outcome != store.OutcomeSkipped:
			t.Errorf("slot %v of the outage: record %+v, want a skip", unix(s), m.Record)
		default:
			skipped++
		}
	}
	if skipped == 0 {
		t.Errorf("slots %d to %d: got no skip record, want the outage's", cut.Unix()+1, back.Unix()-1)
	}
}

// TestRecorderLogsUnwrittenAtShutdown: a skip due at shutdown whose
// record Redis does not answer within CallTimeout (its replies held by a
// proxy) is retried until the shutdown deadline, then logged as not
// written, apart from a skip not yet due.
func TestRecorderLogsUnwrittenAtShutdown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	px := redistest.StartProxyFor(t, srv)
	js := []*jobs.Job{
		testJob(t, "held-a", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
		testJob(t, "held-b", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 }),
	}
	slot := time.Now().Truncate(time.Second).Add(-5 * time.Second)
	s, logs := recorderSchedulerOn(t, clientAt(t, px.Addr()), Options{Replica: "held", CallTimeout: 300 * time.Millisecond}, js, slot)
	r := s.recorder
	r.add(s.jobs[0], slot, store.ReasonOutage, nil)
	r.add(s.jobs[1], slot.Add(time.Minute), store.ReasonOutage, nil) // due in a minute
	px.Delay(redistest.ToClient, 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run is over before the recorder's first round
	// The drain retries the due skip after its backoff until the deadline.
	r.start(ctx)(time.Now().Add(1500 * time.Millisecond))
	px.Delay(redistest.ToClient, 0)
	for _, p := range r.queue {
		if p.js == s.jobs[0] && p.tries < 2 {
			t.Errorf("the due skip: got %d attempts, want 2 or more (retried within the deadline)", p.tries)
		}
	}

	for _, want := range []string{
		`"slots":1,"call_timeout":300,"message":"shutdown: skip records not written: Redis did not answer in time"`,
		`"slots":1,"message":"shutdown: skip records not yet due are not written"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %s, want a line with %s", logs.String(), want)
		}
	}
}

// TestRecorderRetriesUnsentAtOnce: a round of records that waits in this
// replica's own queue past its bound (Redis answers each batch 200 ms
// late, through a proxy, and the lane sends one batch at a time) did not
// fail at Redis: the records that were never written go again in the next
// round with no backoff, and every record is written in the end.
func TestRecorderRetriesUnsentAtOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	px := redistest.StartProxyFor(t, srv)
	const n = 600
	js := make([]*jobs.Job, n)
	for i := range js {
		js[i] = testJob(t, fmt.Sprintf("unsent%03d", i), "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })
	}
	// Due (closes = slot + 1s + 2s skew) and writable until slot + 12s.
	slot := time.Now().Truncate(time.Second).Add(-4 * time.Second)
	s, _ := recorderSchedulerOn(t, clientAt(t, px.Addr()), Options{Replica: "unsent", CallTimeout: 500 * time.Millisecond}, js, slot)
	r := s.recorder
	for _, st := range s.jobs {
		r.add(st, slot, store.ReasonOutage, nil)
	}
	ps, _ := r.due(nil, nil)
	if len(ps) != n {
		t.Fatalf("due: got %d entries, want %d", len(ps), n)
	}

	px.Delay(redistest.ToClient, 200*time.Millisecond)
	r.record(context.Background(), ps) // one round, bounded by CallTimeout
	now := time.Now()
	again, backedOff := 0, 0
	r.mu.Lock()
	for _, p := range r.queue {
		if p.tries == 0 && !p.due.After(now) {
			again++
		} else {
			backedOff++
		}
	}
	r.mu.Unlock()
	// At most one batch (maxBatch calls) was written and unanswered when
	// the round ended: only those may have reached Redis and back off.
	if again < 100 || backedOff > 128 {
		t.Errorf("after a round bounded by its queue: got %d requeued at once and %d backed off, want >= 100 and <= 128", again, backedOff)
	}

	px.Delay(redistest.ToClient, 0)
	ctx, cancel := context.WithCancel(context.Background())
	stop := r.start(ctx)
	t.Cleanup(cancel)
	c := newClient(t, srv)
	written := func() (n int) {
		for _, st := range s.jobs {
			if m, ok := readMark(t, c, st.job.Name, slot); ok && m.Record.Reason == store.ReasonOutage {
				n++
			}
		}
		return n
	}
	got := 0
	for deadline := time.Now().Add(6 * time.Second); got < n && time.Now().Before(deadline); got = written() {
		time.Sleep(100 * time.Millisecond)
	}
	stop(time.Now())
	if got != n {
		t.Errorf("records written: got %d, want %d", got, n)
	}
}

// TestMarkRetention checks the marks' retention and, with it, the window in
// which a skip may be written (from closes to the mark's end): its margin
// grows with the catch-up window, at least MarkMargin.
func TestMarkRetention(t *testing.T) {
	s := &Scheduler{opts: Options{MaxClockSkew: 2 * time.Second}}
	r := newRecorder(s)
	for _, tt := range []struct {
		name           string
		catchup, jit   time.Duration
		want, wantSkip time.Duration // retention; the skip write window
	}{
		{"no catch-up", 0, 0, 10 * time.Second, 7 * time.Second},
		{"10s catch-up", 10 * time.Second, 0, 19 * time.Second, 7 * time.Second},
		{"20s catch-up", 20 * time.Second, 0, 29 * time.Second, 7 * time.Second},
		{"default 1m", time.Minute, 0, 79 * time.Second, 17 * time.Second},
		{"1m with jitter", time.Minute, 3 * time.Second, 82 * time.Second, 17 * time.Second},
		{"1h", time.Hour, 0, time.Hour + 904*time.Second, 902 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &jobs.Job{Name: "j", CatchupWindow: tt.catchup, Jitter: tt.jit}
			if got := s.MarkRetention(j); got != tt.want {
				t.Errorf("retention: got %v, want %v", got, tt.want)
			}
			slot := time.Unix(1_800_000_000, 0)
			js := &jobState{job: j}
			if got := slot.Add(s.MarkRetention(j)).Sub(r.closes(js, slot)); got < tt.wantSkip || got > tt.wantSkip+tt.jit {
				t.Errorf("skip write window: got %v, want %v (plus up to the jitter %v)", got, tt.wantSkip, tt.jit)
			}
		})
	}
}

// TestRecorderNotBesideEarlyClaim: a claim sent at the bound of the
// claim-ahead lands in Redis before its slot; its run starts at the slot,
// and its replica is then cut off for good before its first renewal (it
// died): its running mark expires a retention after the claim, before
// slot + retention. A recorder that is behind writes its outage skip of
// the same slot after that mark has gone: the skip must not be written
// beside the claimed run (an absent mark proves nothing any more). The
// job's ring of decided slots shows the slot claimed, so nothing is
// dropped either (before the ring, the skip was counted as too late).
func TestRecorderNotBesideEarlyClaim(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.StartProxyFor(t, srv)
	const skew = 100 * time.Millisecond
	js := []*jobs.Job{testJob(t, "early", "* * * * * *", "", func(j *jobs.Job) {
		j.CatchupWindow = 0
		j.LockTTL = 3 * time.Second // the first renewal would come 1 s after the claim
	})}
	slot := time.Now().Truncate(time.Second).Add(2 * time.Second)
	dying, _ := recorderSchedulerOn(t, clientAt(t, proxy.Addr()), Options{Replica: "dying", MaxClockSkew: skew}, js, slot)
	behind, logs := recorderSchedulerOn(t, newClient(t, srv), Options{Replica: "behind", MaxClockSkew: skew}, js, slot)
	retention := behind.MarkRetention(js[0]) // 2 x 100ms + 1s + 5s

	bid, err := dying.locker.Bid(dying.claimFor(dying.jobs[0], slot, 0, maxClaimAhead, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(slot.Add(-maxClaimAhead + 50*time.Millisecond))
	claimed := time.Now()
	lease, err := bid.Obtain(context.Background())
	if err != nil {
		t.Fatalf("the early claim: %v", err)
	}
	t.Cleanup(func() { _ = lease.Release(context.Background()) })
	if lease.Due().Before(slot) || !claimed.Before(slot.Add(-maxClaimAhead/2)) {
		t.Fatalf("claim sent at %v for slot %v, due %v: want it at least %v ahead", claimed, slot, lease.Due(), maxClaimAhead/2)
	}
	// The run starts at its slot; the replica dies 100 ms later, before its
	// first renewal (TTL/3 after the claim): no renewal or finish arrives.
	waitUntil(slot.Add(100 * time.Millisecond))
	proxy.Block(true)
	if died := time.Now(); !died.Before(claimed.Add(js[0].LockTTL / 3)) {
		t.Fatalf("the replica died at %v, after its first renewal was due (%v)", died, claimed.Add(js[0].LockTTL/3))
	}

	c := newClient(t, srv)
	markKey := behind.keysOf(behind.jobs[0]).Mark(slot)
	waitFor(t, retention+2*time.Second, func() bool { return c.Exists(context.Background(), markKey).Val() == 0 })
	gone := time.Now()
	if !gone.Before(slot.Add(retention)) {
		t.Fatalf("the running mark expired at %v, not before slot + retention (%v): the claim did not land early", gone, slot.Add(retention))
	}
	t.Logf("claimed %v before the slot; its mark gone %v after the slot, %v before slot + retention",
		slot.Sub(claimed), gone.Sub(slot), slot.Add(retention).Sub(gone))

	r := behind.recorder
	r.record(context.Background(), []*pending{{js: behind.jobs[0], slot: slot, reason: store.ReasonOutage}})
	if m, ok := readMark(t, c, "early", slot); ok {
		t.Errorf("got a record beside the claimed run, want none: %+v", m.Record)
	}
	if n := c.ZCard(context.Background(), behind.keysOf(behind.jobs[0]).History()).Val(); n != 0 {
		t.Errorf("history: got %d records, want 0", n)
	}
	r.logDrops()
	if strings.Contains(logs.String(), "skip records dropped") {
		t.Errorf("log: got %s, want no drop (the ring shows the slot claimed)", logs.String())
	}
}

// TestRecorderAfterLongOutage: a replica cut off from Redis (the proxy
// resets its connections) for longer than a slot's mark retention gives
// the slot up (outage), and its recorder, whose writes fail until the cut
// ends, writes the skip after the window in which an absent mark proves
// that nobody claimed the slot: the job's high-water slot, which never
// expires and is still below the slot, proves it. The job fires once a
// minute, as most cron jobs fire rarely; before, its record was dropped
// as "too late to tell".
func TestRecorderAfterLongOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.StartProxyFor(t, srv)
	const skew = 100 * time.Millisecond
	slot := slotAhead(3 * time.Second)
	runs := &ledger{}
	js := []*jobs.Job{testJob(t, "minutely", fmt.Sprintf("%d * * * * *", slot.Second()), registerLedgerFunc(runs, behaviour{}),
		func(j *jobs.Job) { j.CatchupWindow = 0 })}
	c := newClient(t, srv)
	seenBefore(t, c, "minutely", slot.Add(-2*time.Minute))
	logs := &lockedBuffer{}
	log := zerolog.New(logs)
	in := startInstanceAt(t, proxy.Addr(), js, Options{Replica: "r0", MaxClockSkew: skew, Logger: &log})
	waitUntil(slot.Add(-time.Second)) // before the claim goes out (maxClaimAhead)
	proxy.Block(true)
	retention := MarkRetentionOf(skew, 0, 0) // 2 x 100ms + 1s + 5s
	waitUntil(slot.Add(retention + time.Second))
	proxy.Block(false)
	back := time.Now()
	if !back.After(slot.Add(retention)) {
		t.Fatalf("the cut ended %v after the slot, within its mark's retention (%v): the test does not reach the path", back.Sub(slot), retention)
	}
	waitFor(t, 10*time.Second, func() bool { _, ok := readMark(t, c, "minutely", slot); return ok })
	written := time.Since(slot)
	in.stop(t)

	m, _ := readMark(t, c, "minutely", slot)
	if m.Record.Outcome != store.OutcomeSkipped || (m.Record.Reason != store.ReasonOutage && m.Record.Reason != store.ReasonAborted) {
		t.Errorf("record: got %+v, want skipped (outage, or aborted for a claim that may have won)", m.Record)
	}
	if got := c.ZRange(context.Background(), store.JobKeys("", "minutely").History(), 0, -1).Val(); len(got) != 1 {
		t.Errorf("history: got %q, want the one skip record", got)
	}
	if n := len(runs.snapshot()); n != 0 {
		t.Errorf("runs: got %d, want 0 (Redis was out of reach)", n)
	}
	if strings.Contains(logs.String(), "skip records dropped") {
		t.Errorf("log: a record was dropped: %s", logs.String())
	}
	t.Logf("cut off for %v from 1s before the slot; the skip written %v after the slot (its mark's retention %v)", back.Sub(slot.Add(-time.Second)), written, retention)
}

// TestRecorderWithdrawAfterMarkGone: a bid whose claim may have won (its
// call failed: the proxy cut the replica off) and whose withdrawal comes
// only once the claim's mark may be gone (the cut healed late) finds
// nothing to withdraw; its record then goes to Redis, which writes it only
// if no claim decided the slot (the job's high-water slot is below it).
// Before, it was dropped unsent.
func TestRecorderWithdrawAfterMarkGone(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.StartProxyFor(t, srv)
	const skew = 100 * time.Millisecond
	for _, tc := range []struct {
		name    string
		won     bool // the claim landed and won: the high-water is at its slot
		written bool
	}{
		{"claim never landed", false, true},
		{"claim won", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "withdraw-" + strings.ReplaceAll(tc.name, " ", "-")
			js := []*jobs.Job{testJob(t, name, "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })}
			// Past the mark's retention (2 x 100ms + 1s + 5s) + skew.
			slot := time.Now().Truncate(time.Second).Add(-8 * time.Second)
			s, logs := recorderSchedulerOn(t, clientAt(t, proxy.Addr()), Options{Replica: "cut", MaxClockSkew: skew}, js, slot)
			bid, err := s.locker.Bid(s.claimFor(s.jobs[0], slot, 0, maxClaimAhead, 0))
			if err != nil {
				t.Fatal(err)
			}
			proxy.Block(true)
			_, err = bid.Obtain(context.Background())
			proxy.Block(false)
			if err == nil {
				t.Fatal("a claim through the cut: got a lease, want an I/O error")
			}
			c := newClient(t, srv)
			if tc.won {
				setHighWater(t, c, s, slot)
			}
			lateSkip(t, s, logs, c, slot, store.ReasonAborted, bid, tc.written)
		})
	}
}

// TestRecorderSkipsDecidedUnsent: once Redis answered that a skip past its
// mark's window is late, with the job's high-water slot (a later slot was
// decided first, as the first claim after an outage decides one), the
// recorder does not send the job's other skips up to that slot: they would
// be late too (a backlog of thousands after a long outage). A skip above
// it is still sent and written; what it knew is forgotten once its queue
// empties.
func TestRecorderSkipsDecidedUnsent(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	js := []*jobs.Job{testJob(t, "often", "* * * * * *", "", func(j *jobs.Job) { j.CatchupWindow = 0 })}
	now := time.Now().Truncate(time.Second)
	at := func(ago int) time.Time { return now.Add(-time.Duration(ago) * time.Second) }
	s, logs := recorderScheduler(t, srv, "back", js, at(30))
	c := newClient(t, srv)
	// Retention 10s (2 x 2s skew + 1s + 5s): every slot below is past its
	// mark's window, here and on Redis's clock. The first claim after the
	// outage decided the slot 17s ago.
	setHighWater(t, c, s, at(17))
	r := s.recorder
	r.add(s.jobs[0], now.Add(time.Hour), store.ReasonOutage, nil) // keeps the queue from emptying
	pend := func(ago ...int) []*pending {
		ps := make([]*pending, len(ago))
		for i, a := range ago {
			ps[i] = &pending{js: s.jobs[0], slot: at(a), reason: store.ReasonOutage, index: -1}
		}
		return ps
	}
	ctx := context.Background()
	for _, round := range []struct {
		ago      []int
		sent     int64
		recorded []int
	}{
		{[]int{20}, 1, nil},         // late: Redis reports the high-water
		{[]int{19, 18, 17}, 0, nil}, // up to it: late, not sent
		{[]int{16}, 1, []int{16}},   // above it: sent, written
	} {
		before := scriptCalls(t, c)
		r.record(ctx, pend(round.ago...))
		if sent := scriptCalls(t, c) - before; sent != round.sent {
			t.Errorf("skips %v seconds ago: got %d script calls, want %d", round.ago, sent, round.sent)
		}
		for _, a := range round.ago {
			_, ok := readMark(t, c, "often", at(a))
			if want := slices.Contains(round.recorded, a); ok != want {
				t.Errorf("skip %ds ago: got written %v, want %v", a, ok, want)
			}
		}
	}
	r.logDrops()
	if want := `"slots":4,"message":"skip records dropped: written too late to tell whether the slot ran"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s; got %s", want, logs.String())
	}
	if len(r.decided) != 1 {
		t.Errorf("decided: got %v, want the job's high-water while skips wait", r.decided)
	}
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
	r.record(ctx, nil)
	if len(r.decided) != 0 {
		t.Errorf("decided once the queue is empty: got %v, want none", r.decided)
	}
}

// scriptCalls is how many scripts c's server ran (EVALSHA and EVAL calls
// that did not fail: an EVALSHA answered NOSCRIPT is sent again as EVAL).
func scriptCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		name, fields, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval") {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			x, err := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
			case "failed_calls", "rejected_calls":
				x = -x
			default:
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			n += x
		}
	}
	return n
}

// setHighWater sets the high-water slot of s's first job to slot, as a
// claim or record of that slot leaves it.
func setHighWater(t *testing.T, c *redis.Client, s *Scheduler, slot time.Time) {
	t.Helper()
	if err := c.HSet(context.Background(), s.keysOf(s.jobs[0]).Meta(), "hw", slot.Unix()).Err(); err != nil {
		t.Fatal(err)
	}
}

// lateSkip queues on s's recorder the skip of (s's first job, slot) for
// reason, after withdrawing bid if not nil, runs the recorder until the
// skip is written or counted too late (logs), and checks that it was
// written with reason if written, else not written and counted.
func lateSkip(t *testing.T, s *Scheduler, logs *lockedBuffer, c *redis.Client, slot time.Time, reason string, bid *locker.Bid, written bool) {
	t.Helper()
	name := s.jobs[0].job.Name
	r := s.recorder
	r.add(s.jobs[0], slot, reason, bid)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stop := r.start(ctx)
	late := `"slots":1,"message":"skip records dropped: written too late to tell whether the slot ran"`
	waitFor(t, 5*time.Second, func() bool {
		_, ok := readMark(t, c, name, slot)
		return ok || strings.Contains(logs.String(), late)
	})
	stop(time.Now())
	m, ok := readMark(t, c, name, slot)
	switch {
	case written && (!ok || m.Record.Reason != reason):
		t.Errorf("got record %+v (found %v), want the %s skip; log %s", m.Record, ok, reason, logs.String())
	case !written && ok:
		t.Errorf("a record past its mark's window with the slot or a later one decided: got %+v, want none", m.Record)
	case !written && !strings.Contains(logs.String(), late):
		t.Errorf("log: no line with %s; got %s", late, logs.String())
	}
}

// TestRecorderRingAfterOutage: a replica cut off from Redis (the proxy
// resets its connections) for longer than a slot's mark retention gives
// up the slots of a job that fires every second; once the cut heals it
// claims the next slots at once, so the job's high-water passes the slots
// given up before their skips are written, after their marks' window.
// The job's ring of decided slots still proves that nobody claimed them:
// every slot ends in exactly one record, and none is dropped. Before the
// ring, these skips were dropped as "too late to tell".
func TestRecorderRingAfterOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.StartProxyFor(t, srv)
	const skew = 100 * time.Millisecond
	runs := &ledger{}
	js := []*jobs.Job{testJob(t, "often", "* * * * * *", registerLedgerFunc(runs, behaviour{}),
		func(j *jobs.Job) { j.CatchupWindow = 0 })}
	c := newClient(t, srv)
	logs := &lockedBuffer{}
	log := zerolog.New(logs)
	in := startInstanceAt(t, proxy.Addr(), js, Options{Replica: "r0", MaxClockSkew: skew, Logger: &log})
	// snapshot is, read at one instant, the job's history by slot and its
	// high-water slot.
	k := store.JobKeys("", "often")
	snapshot := func() (map[int64][]store.Record, int64) {
		var hist *redis.StringSliceCmd
		var hw *redis.StringCmd
		if _, err := c.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
			hist = p.ZRange(context.Background(), k.History(), 0, -1)
			hw = p.HGet(context.Background(), k.Meta(), "hw")
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		n := map[int64][]store.Record{}
		for _, h := range hist.Val() {
			rec, err := store.ParseRecord(h)
			if err != nil {
				t.Fatal(err)
			}
			n[rec.Slot.Unix()] = append(n[rec.Slot.Unix()], rec)
		}
		high, _ := strconv.ParseInt(hw.Val(), 10, 64)
		return n, high
	}
	records := func() map[int64][]store.Record { n, _ := snapshot(); return n }
	waitFor(t, 10*time.Second, func() bool { return len(records()) >= 2 }) // the ring holds slots decided before the cut
	retention := MarkRetentionOf(skew, 0, 0)                               // 2 x 100ms + 1s + 5s
	proxy.Block(true)
	cut := time.Now()
	time.Sleep(retention + 2*time.Second)
	proxy.Block(false)
	healed := time.Now()
	// Every slot from the first on record to the one after the heal.
	first := slices.Min(slices.Collect(maps.Keys(records())))
	last := healed.Truncate(time.Second).Add(time.Second).Unix()
	// proved counts the records of the cut's slots that appeared while the
	// high-water was already at or above their slot (read before they
	// appeared; it never goes down): the high-water no longer proved them.
	proved, hw, seen := 0, int64(0), []int64{}
	covered := func() bool {
		n, high := snapshot()
		done := true
		for s := first; s <= last; s++ {
			switch {
			case len(n[s]) == 0:
				done = false
			case s >= cut.Unix() && s <= healed.Unix() && hw >= s && !slices.Contains(seen, s) && n[s][0].Outcome == store.OutcomeSkipped:
				proved++
			}
			if len(n[s]) > 0 && !slices.Contains(seen, s) {
				seen = append(seen, s)
			}
		}
		hw = high
		return done
	}
	for deadline := time.Now().Add(20 * time.Second); !covered() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	in.stop(t)

	n := records()
	for s := first; s <= last; s++ {
		if len(n[s]) != 1 {
			t.Errorf("slot %v: got records %+v, want 1", time.Unix(s, 0).UTC(), n[s])
		}
	}
	late := cutPastWindow(t, cut, healed, retention)
	for _, s := range late {
		if got := n[s.Unix()]; len(got) != 1 || got[0].Outcome != store.OutcomeSkipped {
			t.Errorf("slot %v, in the cut: got records %+v, want a skip", s, got)
		}
	}
	if strings.Contains(logs.String(), "skip records dropped") {
		t.Errorf("log: a record was dropped: %s", logs.String())
	}
	if proved == 0 {
		t.Errorf("no skip of the cut was written with the high-water at or above its slot: the test did not reach the ring's proof")
	}
	t.Logf("cut off for %v; %d slots given up past their marks' window; %d skips written after a later slot was decided; %d slots on record",
		healed.Sub(cut), len(late), proved, len(n))
}

// TestQuorumRecorderAfterOutage is TestRecorderRingAfterOutage in quorum
// mode: a replica cut off from all three masters for longer than a slot's
// mark retention gives up the slots of a job that fires every second, and
// claims the next ones once the cut heals, before the skips of those it
// gave up are written, past their marks' window. Each master's ring
// proves that it granted no claim of them, so every slot ends in exactly
// one record on a majority of the masters, and none is dropped. Before,
// every quorum skip past its mark's window was dropped as too late.
func TestQuorumRecorderAfterOutage(t *testing.T) {
	t.Parallel()
	const skew = 100 * time.Millisecond
	var (
		direct  []*redis.Client
		proxies []*redistest.Proxy
		clients []locker.Client
	)
	for range 3 {
		srv := redistest.Start(t, redistest.Options{})
		p := redistest.StartProxyFor(t, srv)
		direct, proxies = append(direct, newClient(t, srv)), append(proxies, p)
		clients = append(clients, clientAtTimeout(t, p.Addr(), 500*time.Millisecond))
	}
	q, err := locker.NewQuorum(clients, locker.Options{Retries: 3, RetryDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runs := &ledger{}
	js := []*jobs.Job{testJob(t, "often", "* * * * * *", registerLedgerFunc(runs, behaviour{}),
		func(j *jobs.Job) { j.CatchupWindow = 0 })}
	logs := &lockedBuffer{}
	log := zerolog.New(logs).Level(zerolog.WarnLevel)
	s, err := New(js, q, Options{Replica: "r0", MaxClockSkew: skew, Logger: &log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		}
	}
	t.Cleanup(stop)

	// held is, per slot, the records of it on each master that has one.
	k := store.JobKeys("", "often")
	held := func() map[int64][][]store.Record {
		out := map[int64][][]store.Record{}
		for _, c := range direct {
			per := map[int64][]store.Record{}
			hist, err := c.ZRange(context.Background(), k.History(), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hist {
				rec, err := store.ParseRecord(h)
				if err != nil {
					t.Fatal(err)
				}
				per[rec.Slot.Unix()] = append(per[rec.Slot.Unix()], rec)
			}
			for s, recs := range per {
				out[s] = append(out[s], recs)
			}
		}
		return out
	}
	onMajority := func(n map[int64][][]store.Record, s int64) bool { return len(n[s]) >= 2 }
	waitFor(t, 10*time.Second, func() bool {
		n := held()
		return len(slices.DeleteFunc(slices.Collect(maps.Keys(n)), func(s int64) bool { return !onMajority(n, s) })) >= 2
	})
	retention := MarkRetentionOf(skew, 0, 0)
	for _, p := range proxies {
		p.Block(true)
	}
	cut := time.Now()
	time.Sleep(retention + 2*time.Second)
	for _, p := range proxies {
		p.Block(false)
	}
	healed := time.Now()
	n := held()
	first := slices.Min(slices.DeleteFunc(slices.Collect(maps.Keys(n)), func(s int64) bool { return !onMajority(n, s) }))
	last := healed.Truncate(time.Second).Add(time.Second).Unix()
	covered := func() bool {
		n := held()
		for s := first; s <= last; s++ {
			if !onMajority(n, s) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(25 * time.Second); !covered() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	stop()

	n = held()
	for s := first; s <= last; s++ {
		if !onMajority(n, s) {
			t.Errorf("slot %v: got records on %d masters %+v, want a majority", unix(s), len(n[s]), n[s])
		}
		for _, recs := range n[s] {
			if len(recs) != 1 {
				t.Errorf("slot %v: a master holds records %+v, want 1", unix(s), recs)
			}
		}
	}
	late := cutPastWindow(t, cut, healed, retention)
	for _, s := range late {
		for _, recs := range n[s.Unix()] {
			if recs[0].Outcome != store.OutcomeSkipped {
				t.Errorf("slot %v, in the cut: got records %+v, want a skip", s, recs)
			}
		}
	}
	if strings.Contains(logs.String(), "skip records dropped") {
		t.Errorf("log: a record was dropped: %s", logs.String())
	}
	t.Logf("cut off for %v; %d slots given up past their marks' window; %d slots on record", healed.Sub(cut), len(late), len(n))
}

// cutPastWindow are the slots given up in a cut from cut to healed whose
// marks' window (retention) ended before the heal, so that their skips
// could only be written after it: from the first whose claim could not go
// out before the cut. It fails the test when there is none: the test
// would not reach the path.
func cutPastWindow(t *testing.T, cut, healed time.Time, retention time.Duration) []time.Time {
	t.Helper()
	var out []time.Time
	for s := cut.Add(maxClaimAhead).Truncate(time.Second).Add(time.Second); s.Add(retention - maxClaimAhead).Before(healed); s = s.Add(time.Second) {
		out = append(out, s)
	}
	if len(out) == 0 {
		t.Fatalf("no slot of the cut (%v to %v) had its mark's window end before the heal: the test does not reach the path", cut, healed)
	}
	return out
}
