package scheduler

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// TestQuorumExactlyOnce runs three instances over a quorum of three
// independent masters: every slot is claimed by all three at the same
// instant, so the masters' votes can split. Each (job, slot) must still run
// exactly once, none may be missed, and fences must follow slots.
func TestQuorumExactlyOnce(t *testing.T) {
	t.Parallel()
	servers := []*redistest.Server{
		redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}),
	}
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 10 {
		js = append(js, testJob(t, fmt.Sprintf("q%02d", i), "* * * * * *", fn, nil))
	}
	begin := nextSecond(0)
	waitUntil(begin.Add(-300 * time.Millisecond))
	for i := range 3 {
		startQuorumInstance(t, servers, js, Options{Replica: fmt.Sprintf("r%d", i)})
	}
	end := begin.Add(10 * time.Second)
	waitUntil(end.Add(time.Second))
	got := checkOnce(t, l.snapshot(), begin.Add(2*time.Second))
	missed, byReplica := 0, map[string]int{}
	for _, j := range js {
		for s := begin.Add(2 * time.Second); !s.After(end); s = s.Add(time.Second) {
			if e, ok := got[j.Name][s.Unix()]; ok {
				byReplica[e.replica]++
			} else {
				missed++
				var marks []string
				for n, srv := range servers {
					h, _ := srv.Client(t).HGetAll(context.Background(), store.JobKeys("", j.Name).Mark(s)).Result()
					marks = append(marks, fmt.Sprintf("node %d: %v", n, h))
				}
				t.Errorf("job %s slot %v: got no run, want one; marks: %v", j.Name, s.UTC(), marks)
			}
		}
	}
	t.Logf("runs by replica: %v, missed %d", byReplica, missed)
}

// startQuorumInstance runs a scheduler over a quorum of servers (each
// reached by its own client) until the test ends, with split votes retried
// by the locker as redisconn dials a quorum.
func startQuorumInstance(t *testing.T, servers []*redistest.Server, js []*jobs.Job, opts Options) *Scheduler {
	t.Helper()
	addrs := make([]string, len(servers))
	for n, srv := range servers {
		addrs[n] = srv.Addr()
	}
	return startQuorumInstanceAt(t, addrs, js, opts, locker.Options{Retries: 3})
}

// startQuorumInstanceAt is startQuorumInstance on the masters at addrs
// (proxies' or servers'), with the locker's options lo (Retries: the
// locker's retries of a split vote, negative for none; RetryDelay 50ms
// when zero), and hooks on every master's client.
func startQuorumInstanceAt(t *testing.T, addrs []string, js []*jobs.Job, opts Options, lo locker.Options, hooks ...redis.Hook) *Scheduler {
	t.Helper()
	clients := make([]locker.Client, len(addrs))
	for n, addr := range addrs {
		c := clientAtTimeout(t, addr, max(500*time.Millisecond, lo.NodeTimeout)) // the socket's bound is no shorter than the locker's
		for _, h := range hooks {
			c.AddHook(h)
		}
		clients[n] = c
	}
	if lo.RetryDelay == 0 {
		lo.RetryDelay = 50 * time.Millisecond
	}
	q, err := locker.NewQuorum(clients, lo)
	if err != nil {
		t.Fatal(err)
	}
	return runScheduler(t, js, q, opts)
}

// TestQuorumMajorityAlive: 5 masters, 2 of them dead, 3 replicas that all
// claim every firing (work sharing off, the worst case for split votes):
// every firing runs once, and none is recorded as an outage. With the
// locker's own retries (as redisconn dials a quorum) and without them, when
// the scheduler sends a split claim again itself. Each replica reaches the
// live masters through proxies that delay it by 0, 5 and 10 ms in a
// different order, so that each live master hears another replica first
// and the first claims of an instant split. Without it, whether claims
// split was left to the order in which one process's timers fire, which
// can stay the same for a whole run: 1 run in 10 had no split at all.
func TestQuorumMajorityAlive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		retries int
	}{{"locker retries", 3}, {"scheduler retries", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var servers []*redistest.Server
			for range 3 {
				servers = append(servers, redistest.Start(t, redistest.Options{}))
			}
			dead := []string{redistest.RefusedAddr(t), redistest.RefusedAddr(t)} // masters 3 and 4
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
			var js []*jobs.Job
			for i := range 6 {
				js = append(js, testJob(t, fmt.Sprintf("m%d", i), "* * * * * *", fn, nil))
			}
			addrs := make([][]string, 3) // per replica, per master
			for i := range addrs {
				for m, srv := range servers {
					p := redistest.StartProxyFor(t, srv)
					p.Delay(redistest.ToServer, time.Duration((m-i+3)%3)*5*time.Millisecond)
					addrs[i] = append(addrs[i], p.Addr())
				}
				addrs[i] = append(addrs[i], dead...)
			}
			begin := nextSecond(0)
			waitUntil(begin.Add(-300 * time.Millisecond))
			var ins []*Scheduler
			for i := range 3 {
				ins = append(ins, startQuorumInstanceAt(t, addrs[i], js, Options{Replica: fmt.Sprintf("r%d", i), ShareBeat: -1}, locker.Options{Retries: tc.retries}))
			}
			end := begin.Add(8 * time.Second)
			waitUntil(end.Add(2 * time.Second))
			got := checkOnce(t, l.snapshot(), begin.Add(2*time.Second))
			missed := 0
			for _, j := range js {
				for s := begin.Add(2 * time.Second); !s.After(end); s = s.Add(time.Second) {
					if _, ok := got[j.Name][s.Unix()]; !ok {
						missed++
						t.Errorf("job %s slot %v: got no run, want one (a majority of masters is alive)", j.Name, s.UTC())
					}
				}
			}
			var outages, resent float64
			for _, s := range ins {
				resent += counterOf(s.metrics.splitVotes)
				for _, j := range js {
					outages += float64(s.metrics.jobs.get(j.Name).skip(store.ReasonOutage).Load())
				}
			}
			t.Logf("missed %d; outage skips %v; split claims sent again by the scheduler %v", missed, outages, resent)
			if outages != 0 {
				t.Errorf("outage skips: got %v, want 0 (the masters that answered made a majority)", outages)
			}
			if tc.retries < 0 && resent == 0 {
				t.Errorf("split claims sent again by the scheduler: got 0, want some (three claimants, three votes)")
			}
		})
	}
}

// TestQuorumRestartEmpty: one of 3 masters restarts empty (no
// persistence) while runs go on, and then a replica starts that catches up
// the slots of the last seconds, which ran before the restart: the two
// masters that kept their marks refuse them, so no slot runs twice. A
// second master then restarts empty after the delay the README advises
// (the longest mark retention, so that the first one holds every mark
// that still matters), and another catching-up replica still runs no slot
// twice.
func TestQuorumRestartEmpty(t *testing.T) {
	t.Parallel()
	servers := []*redistest.Server{
		redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}),
	}
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 4 {
		js = append(js, testJob(t, fmt.Sprintf("e%d", i), "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 3 * time.Second }))
	}
	start := func(name string) *Scheduler {
		return startQuorumInstance(t, servers, js, Options{Replica: name, MaxClockSkew: 200 * time.Millisecond})
	}
	restartEmpty := func(n int) {
		t.Helper()
		if err := servers[n].Kill(); err != nil {
			t.Fatal(err)
		}
		if err := servers[n].Restart(); err != nil {
			t.Fatal(err)
		}
	}
	first := start("r0")
	start("r1")
	time.Sleep(4 * time.Second)
	restartEmpty(0)
	start("late0") // catches up the last 3 s: slots marked on masters 1 and 2 only
	delay := first.MarkRetention(js[0])
	time.Sleep(delay)
	restartEmpty(1)
	start("late1") // its catch-up: masters 0 and 2 hold the marks
	time.Sleep(4 * time.Second)

	// No slot twice. Fences are not checked: a master that lost its counter
	// and then makes a majority with one that missed the last claim can
	// repeat a fence (README, guarantee 4).
	seen := map[string]entry{}
	runs := 0
	for _, e := range l.snapshot() {
		if e.attempt > 1 {
			continue
		}
		k := fmt.Sprintf("%s@%d", e.job, e.slot.Unix())
		if prev, dup := seen[k]; dup {
			t.Errorf("job %s slot %v ran twice: on %s (fence %d) and %s (fence %d)", e.job, e.slot, prev.replica, prev.fence, e.replica, e.fence)
		}
		seen[k] = e
		runs++
	}
	t.Logf("%d runs; master 0 restarted empty at +4s, master 1 %v later", runs, delay)
	if runs == 0 {
		t.Error("no runs")
	}
}

// counterOf reads a counter.
func counterOf(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// TestQuorumSplitRecorded: a claim that stays split until the next slot
// (another claim's running mark holds one of the two live masters of three,
// as a claimant that died mid-claim leaves it) runs nothing and is queued
// to be recorded as a split vote, not as an outage. Also when the replica
// wakes from a wait before a new vote only after the claim deadline (its
// timers stall, as on a starved host, from the first split on): the slot
// was lost to the split, not to lateness. And when the ghost's master
// answers late from the first split on (its proxy holds the replies, as a
// starved host reads them): the next attempts, cut short by their bound
// with the other master's vote in, learned nothing new. With a catch-up
// window past the next slot, a claim so cut may have won where it was not
// answered, so it is sent again past the next slot, as after an I/O error.
// The stall and the hold start as the ghost's vote is read (ghostHook).
func TestQuorumSplitRecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		stall   bool          // the timers stall past the claim deadline from the first split on
		late    bool          // the ghost's master's replies are held from the first split until after the next slot
		catchup time.Duration // the job's catch-up window
	}{
		{name: "split"},
		{name: "stalled timers", stall: true},
		{name: "late replies", late: true},
		{name: "late replies, catch-up past the next slot", late: true, catchup: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			servers := []*redistest.Server{redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{})}
			// The third master is dead: its port refuses, and no server that
			// another test starts can take it.
			addrs := []string{servers[0].Addr(), servers[1].Addr(), redistest.RefusedAddr(t)}
			lo := locker.Options{Retries: 3}
			var proxy *redistest.Proxy
			if tc.late {
				proxy = redistest.StartProxyFor(t, servers[0])
				addrs[0] = proxy.Addr()
				lo.NodeTimeout = 3 * time.Second // and the clients' timeouts: past every attempt's bound, which cuts the calls
			}
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{})
			j := testJob(t, "ghosted", "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = tc.catchup })
			slot := nextSecond(2 * time.Second)
			ghost := store.Record{Job: j.Name, Slot: slot, Outcome: store.OutcomeRunning, Replica: "ghost"}.Encode()
			c := servers[0].Client(t)
			ctx := context.Background()
			mark := store.JobKeys("", j.Name).Mark(slot)
			if err := c.HSet(ctx, mark, "token", "ghost-token", "fence", 1, "run", ghost, "prevhw", "").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.Expire(ctx, mark, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			clk := &stallClock{}
			hook := &ghostHook{}
			switch {
			case tc.stall:
				hook.onVote = func() { clk.until.Store(slot.Add(OnTime + 300*time.Millisecond).UnixNano()) } // past the claim deadline (no catch-up)
			case tc.late:
				hook.onVote = func() { proxy.Hold(redistest.ToClient) }
			}
			s := startQuorumInstanceAt(t, addrs, []*jobs.Job{j}, Options{Replica: "r0", Clock: clk}, lo, redistest.AfterHook(hook.after))
			if tc.late {
				waitUntil(slot.Add(OnTime + 200*time.Millisecond))
				proxy.Release(redistest.ToClient)
			}
			waitUntil(slot.Add(max(tc.catchup, OnTime) + time.Second)) // before the skip record is due (+ MaxClockSkew)
			for _, e := range l.snapshot() {
				if e.slot.Equal(slot) {
					t.Errorf("slot %v ran on %s, want no run (no majority possible)", slot, e.replica)
				}
			}
			var reasons []string
			s.recorder.mu.Lock()
			for _, p := range s.recorder.queue {
				if p.slot.Equal(slot) {
					reasons = append(reasons, p.reason)
				}
			}
			s.recorder.mu.Unlock()
			if len(reasons) != 1 || reasons[0] != store.ReasonSplit {
				t.Errorf("skip records queued for slot %v: got %v, want [%s]", slot, reasons, store.ReasonSplit)
			}
			// Held from the first split on, the locker's own retry of it is
			// cut short, which counts no new split vote; after the release
			// (catch-up past the next slot) the retries split again.
			if n := counterOf(s.metrics.splitVotes); n == 0 && (!tc.late || tc.catchup > OnTime) {
				t.Errorf("split claims sent again: got 0, want some")
			}
			if hook.onVote != nil && !hook.fired.Load() {
				t.Errorf("the ghost's vote was never read: no stall, no hold")
			}
			if last := time.Unix(0, hook.last.Load()); tc.catchup > OnTime && !last.After(slot.Add(OnTime)) {
				t.Errorf("last vote for the ghost read at %v, want after the next slot %v (the cut claim sent again within its catch-up window)", last, slot.Add(OnTime))
			}
		})
	}
}

// ghostHook calls onVote once as soon as a claim's reply names the ghost's
// token (see redistest.AfterHook): a node's vote for another claimant, read before
// the claim's votes are counted as split. last is when such a reply was
// last read (Unix ns).
type ghostHook struct {
	onVote func()
	fired  atomic.Bool
	last   atomic.Int64
}

func (h *ghostHook) after(cmd redis.Cmder) {
	c, ok := cmd.(*redis.Cmd)
	if !ok || c.Err() != nil {
		return
	}
	if r, ok := c.Val().([]any); ok && len(r) >= 4 && r[0] == "claimed" && r[3] == "ghost-token" {
		h.last.Store(time.Now().UnixNano())
		if h.onVote != nil && h.fired.CompareAndSwap(false, true) {
			h.onVote()
		}
	}
}

// backlogLocker is a quorum Locker whose Backlog the test sets. How the
// backlog is measured, with real delayed and held replies, is
// locker.TestBacklog's; here, what the scheduler does with it.
type backlogLocker struct {
	*locker.Locker
	backlog atomic.Int64
}

func (b *backlogLocker) Backlog() time.Duration { return time.Duration(b.backlog.Load()) }

// TestQuorumShedsBacklog: in quorum mode, a replica whose calls to a
// majority of the masters wait in its own queue longer than half the time
// a claim has left (an overload) gives that claim up unsent, as late,
// instead of sending it to masters that would answer it too late, where
// it would be withdrawn. The slot is then recorded as skipped (late),
// without a claim, in the history on every master; no master holds a
// claim of it; and the slots after it run once the backlog is gone.
func TestQuorumShedsBacklog(t *testing.T) {
	t.Parallel()
	var servers []*redistest.Server
	clients := make([]locker.Client, 3)
	for i := range clients {
		srv := redistest.Start(t, redistest.Options{})
		servers, clients[i] = append(servers, srv), newClient(t, srv)
	}
	q, err := locker.NewQuorum(clients, locker.Options{Retries: 3, RetryDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bl := &backlogLocker{Locker: q}
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	const n = 20
	var js []*jobs.Job
	for i := range n {
		js = append(js, testJob(t, fmt.Sprintf("shed%02d", i), "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 }))
	}
	s := runScheduler(t, js, bl, Options{Replica: "shed-r"})
	waitFor(t, 15*time.Second, func() bool { return len(l.snapshot()) >= 2*n })

	// The slot's claims go out with a backlog of 900 ms: more than half
	// of their time left (the next slot, less claimGuard, from when they
	// go out ahead of the slot).
	shed := slotAhead(maxClaimAhead + 300*time.Millisecond)
	out := claimsOut(s, shed)
	waitUntil(out.Add(-100 * time.Millisecond))
	bl.backlog.Store(int64(900 * time.Millisecond))
	waitUntil(shed.Add(300 * time.Millisecond))
	bl.backlog.Store(0)
	after := shed.Add(2 * time.Second)
	waitFor(t, 20*time.Second, func() bool {
		for _, e := range l.snapshot() {
			if e.slot.Equal(after) {
				return true
			}
		}
		return false
	})

	for _, e := range l.snapshot() {
		if e.slot.Equal(shed) {
			t.Errorf("job %s slot %v ran, want it shed", e.job, shed.UTC())
		}
	}
	for i, srv := range servers {
		claimed := 0
		for _, j := range js {
			if m, ok := readMark(t, srv.Client(t), j.Name, shed); ok && m.Token != "" {
				claimed++
			}
		}
		if claimed > 0 {
			t.Errorf("slot %v: claims on master %d: got %d of %d, want 0 (shed unsent)", shed.UTC(), i, claimed, n)
		}
	}
	// The skips are written once no replica may claim the slot (slot +
	// catch-up window + max clock skew), on every master; the history
	// keeps them past the marks' short retention.
	score := strconv.FormatInt(shed.UnixMilli(), 10)
	notSkipped := func() string {
		for i, srv := range servers {
			c := srv.Client(t)
			for _, j := range js {
				hist, err := c.ZRangeByScore(context.Background(), store.JobKeys("", j.Name).History(), &redis.ZRangeBy{Min: score, Max: score}).Result()
				if err != nil {
					return err.Error()
				}
				var recs []store.Record
				for _, h := range hist {
					r, err := store.ParseRecord(h)
					if err != nil {
						return err.Error()
					}
					recs = append(recs, r)
				}
				if len(recs) != 1 || recs[0].Outcome != store.OutcomeSkipped || recs[0].Reason != store.ReasonLate || recs[0].Fence != 0 {
					return fmt.Sprintf("master %d, job %s slot %v: got history %+v, want one skip (late) without a claim", i, j.Name, shed.UTC(), recs)
				}
			}
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for msg := notSkipped(); msg != ""; msg = notSkipped() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var shedN dto.Metric
	if err := s.metrics.claimsShed.Write(&shedN); err != nil {
		t.Fatal(err)
	}
	if got := shedN.GetCounter().GetValue(); got < n {
		t.Errorf("claims shed: got %v, want at least %d", got, n)
	}
}

// mixedQuorum starts 3 masters, each behind a proxy, and a job "mixed"
// every 4 s with catch-up window cw (its skips are due cw + OnTime +
// MaxClockSkew after their slot), which records its runs in l.
func mixedQuorum(t *testing.T, l *ledger, cw time.Duration) (clients []*redis.Client, proxies []*redistest.Proxy, addrs []string, j *jobs.Job) {
	t.Helper()
	for range 3 {
		srv := redistest.Start(t, redistest.Options{})
		p := redistest.StartProxyFor(t, srv)
		clients, proxies, addrs = append(clients, newClient(t, srv)), append(proxies, p), append(addrs, p.Addr())
	}
	j = testJob(t, "mixed", "*/4 * * * * *", registerLedgerFunc(l, behaviour{}), func(j *jobs.Job) { j.CatchupWindow = cw })
	return clients, proxies, addrs, j
}

// lostRelease sets the job's lease on c as a run whose release was lost
// there would have left it.
func lostRelease(t *testing.T, c *redis.Client, j *jobs.Job) {
	t.Helper()
	if err := c.Set(context.Background(), store.JobKeys("", j.Name).Lease(), "lost-release", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
}

// records are the final records of (j, slot) on each of clients ("" for
// none).
func records(t *testing.T, clients []*redis.Client, j *jobs.Job, slot time.Time) []string {
	t.Helper()
	out := make([]string, len(clients))
	for i, c := range clients {
		if m, ok := readMark(t, c, j.Name, slot); ok && m.Ended {
			out[i] = m.Record.Encode()
		}
	}
	return out
}

// TestQuorumMixedRefusalSentAgain: the masters refuse a claim for mixed
// reasons. The job's lease is busy on masters 0 and 1 (its holder's
// release lost there). Master 0 hears the claim only after the slot is
// due (its requests are held from the moment the claim goes out) and
// refuses it as busy, recording the skip; master 1 hears it before (the
// claim goes out ahead) and answers "early", writing nothing, its answer
// held until master 0's is read; master 2 grants it. The refusal is
// early, so the claim is sent again at its due, and master 1 records the
// skip then: a majority holds it before the replica's recorder would
// write it, the replica counts it once, and the slot did not run. Before,
// the replica took the busy refusal as on record, and the skip stood on
// master 0 alone.
func TestQuorumMixedRefusalSentAgain(t *testing.T) {
	t.Parallel()
	l := &ledger{}
	// A catch-up window of 3 s: a starved replica's claim, sent again at
	// the due, is not given up late before it reaches master 1.
	clients, proxies, addrs, j := mixedQuorum(t, l, 3*time.Second)
	// The first slot after the start is claimed at its due, the next ones
	// ahead of it (the job is steady): the test takes the second.
	slot := j.Schedule.Next(j.Schedule.Next(time.Now()))
	mark := store.JobKeys("", j.Name).Mark(slot)
	ofSlot := func(cmd redis.Cmder) bool { return slices.Contains(cmd.Args(), any(mark)) }
	var armed, holding atomic.Bool
	armed.Store(true)
	before := redistest.BeforeHook(func(cmd redis.Cmder) {
		if ofSlot(cmd) && armed.CompareAndSwap(true, false) {
			proxies[0].Hold(redistest.ToServer)
			proxies[1].Hold(redistest.ToClient)
			holding.Store(true)
		}
	})
	after := redistest.AfterHook(func(cmd redis.Cmder) {
		if c, ok := cmd.(*redis.Cmd); ok && ofSlot(cmd) && c.Err() == nil && strings.Contains(fmt.Sprint(c.Val()), "busy") && holding.CompareAndSwap(true, false) {
			proxies[1].Release(redistest.ToClient)
		}
	})
	s := startQuorumInstanceAt(t, addrs, []*jobs.Job{j}, Options{Replica: "r0"}, locker.Options{Retries: 3, NodeTimeout: 2 * time.Second}, before, after)
	claimsOut(s, slot)
	lostRelease(t, clients[0], j)
	lostRelease(t, clients[1], j)
	waitUntil(slot.Add(100 * time.Millisecond))
	proxies[0].Release(redistest.ToServer)
	waitUntil(slot.Add(time.Second))
	proxies[1].Release(redistest.ToClient) // if no busy reply came
	if armed.Load() {
		t.Fatalf("slot %v: no claim went out by %v", slot.UTC(), time.Now().UTC())
	}
	// The claim's own records: read before the next slot's claims go out
	// (the lease is still busy: it would be refused and counted too), and
	// long before the skip is due (slot + catch-up + OnTime +
	// MaxClockSkew).
	waitUntil(j.Schedule.Next(slot).Add(-maxClaimAhead - 200*time.Millisecond))
	want := store.Skip(j.Name, slot, store.ReasonOverlap)
	if got := records(t, clients, j, slot); got[0] != want || got[1] != want {
		t.Errorf("slot %v: got the masters' records %q, want %s on masters 0 and 1", slot.UTC(), got, want)
	}
	if n := s.metrics.jobs.get(j.Name).skip(store.ReasonOverlap).Load(); n != 1 {
		t.Errorf("skips (overlap) counted: got %v, want 1", n)
	}
	for _, e := range l.snapshot() {
		if e.slot.Equal(slot) {
			t.Errorf("slot %v ran on %s, want no run (refused as busy)", slot.UTC(), e.replica)
		}
	}
}

// TestQuorumMinorityRecordCompleted: the masters refuse a claim for mixed
// reasons, and the refusal decides the slot while its record stands on
// one master. The job's lease is busy on master 0 (its holder's release
// lost there), which refuses the claim as busy once the slot is due,
// recording the skip; master 1 lost its data and first saw the job after
// the slot (a newer replica's first sight), so the slot comes before the
// job there ("unborn"), and nothing is recorded; master 2 grants the
// claim. The replica queues the skip (overlap) and, once no replica may
// claim the slot, writes it where it is missing: masters 0 and 2 hold it,
// the replica counts it once, and the slot did not run. Before, the
// replica took the refusal as on record (busy) or the slot as not the
// job's (unborn), and the skip stood on master 0 alone.
func TestQuorumMinorityRecordCompleted(t *testing.T) {
	t.Parallel()
	l := &ledger{}
	clients, _, addrs, j := mixedQuorum(t, l, 0)
	s := startQuorumInstanceAt(t, addrs, []*jobs.Job{j}, Options{Replica: "r0"}, locker.Options{Retries: 3, NodeTimeout: 2 * time.Second})
	slot := j.Schedule.Next(time.Now().Add(time.Second))
	claimsOut(s, slot)
	lostRelease(t, clients[0], j)
	seenBefore(t, clients[1], j.Name, slot.Add(time.Second))
	want := store.Skip(j.Name, slot, store.ReasonOverlap)
	wantAll := []string{want, "", want}
	skips := s.metrics.jobs.get(j.Name).skip(store.ReasonOverlap)
	var got []string
	for deadline := slot.Add(OnTime + DefaultMaxClockSkew + 5*time.Second); ; {
		// The recorder counts the skip once its write returned.
		if got = records(t, clients, j, slot); slices.Equal(got, wantAll) && skips.Load() > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(got, wantAll) {
		t.Errorf("slot %v: got the masters' records %q, want %q", slot.UTC(), got, wantAll)
	}
	if n := skips.Load(); n != 1 {
		t.Errorf("skips (overlap) counted: got %v, want 1", n)
	}
	for _, e := range l.snapshot() {
		if e.slot.Equal(slot) {
			t.Errorf("slot %v ran on %s, want no run (refused as busy)", slot.UTC(), e.replica)
		}
	}
}
