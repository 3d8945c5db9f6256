package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// jumpClock is the real clock plus an offset that a test can move, as a
// replica paused (GC, SIGSTOP) in the middle of a claim sees time jump.
type jumpClock struct {
	base Clock
	off  atomic.Int64
}

func (c *jumpClock) Now() time.Time                 { return c.base.Now().Add(time.Duration(c.off.Load())) }
func (c *jumpClock) NewTimer(d time.Duration) Timer { return c.base.NewTimer(d) }

// jumpHook moves the clock forward by two minutes once, right after the
// reply of the first claim that won has arrived (see redistest.AfterHook): the
// replica "paused" between Redis granting the claim and its reading the
// reply.
type jumpHook struct {
	clk  *jumpClock
	done atomic.Bool
}

func (h *jumpHook) after(cmd redis.Cmder) {
	c, ok := cmd.(*redis.Cmd)
	if !ok || c.Err() != nil {
		return
	}
	if r, ok := c.Val().([]any); ok && len(r) > 0 && r[0] == "won" && h.done.CompareAndSwap(false, true) {
		h.clk.off.Store(int64(2 * time.Minute))
	}
}

// TestClaimConfirmedTooLateDoesNotRun: a claim confirmed after its claim
// deadline (the replica was paused between Redis granting it and reading
// the reply) does not run: it would start later than the catch-up window
// allows. The slot stays decided, recorded as skipped (late).
func TestClaimConfirmedTooLateDoesNotRun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv)
	clk := &jumpClock{base: RealClock()}
	c.AddHook(redistest.AfterHook((&jumpHook{clk: clk}).after))
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	js := []*jobs.Job{testJob(t, "late", "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 })}
	s, err := New(js, newLocker(t, c), Options{Replica: "paused", Clock: clk, Logger: testLogger(t, zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// The mark of a claim that won and ended late. Another slot's claim,
	// read after the jump, may be withdrawn and recorded late without a
	// claim (a test that starts just before a second claims two slots
	// at once): that mark is not this one.
	var late store.Mark
	waitFor(t, 5*time.Second, func() bool {
		keys, _ := srv.Client(t).Keys(context.Background(), store.JobKeys("", "late").Mark(time.Unix(0, 0))[:len("redcron:{late}:slot:")]+"*").Result()
		for _, k := range keys {
			h, _ := srv.Client(t).HGetAll(context.Background(), k).Result()
			if m, ok, _ := store.ParseMark(h); ok && m.Ended && m.Record.Reason == store.ReasonLate && m.Token != "" {
				late = m
				return true
			}
		}
		return false
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if late.Token == "" || late.Record.Outcome != store.OutcomeSkipped {
		t.Errorf("late slot's mark: got %+v, want a claim ended as skipped (late)", late)
	}
	for _, e := range l.snapshot() {
		if e.slot.Equal(late.Record.Slot) {
			t.Fatalf("the slot confirmed too late ran (fence %d), want it skipped", e.fence)
		}
	}
}

// TestQueuedClaimNotSent: a claim that waits in this replica's queue until
// the next slot (a call before it is in flight and Redis holds its reply)
// never reached Redis. It is recorded late, not as an outage: no claim
// error is counted, nothing is withdrawn, and the next slot runs once the
// reply comes.
func TestQueuedClaimNotSent(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.StartProxyFor(t, srv)
	var l ledger
	fn := registerLedgerFunc(&l, behaviour{})
	j := testJob(t, "queued", "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 })
	// Calls wait up to 3 s for their reply: the held call keeps the queue
	// behind it past the next slot.
	rc := redis.NewClient(&redis.Options{
		Addr: proxy.Addr(), ReadTimeout: 5 * time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, PoolSize: 8, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = rc.Close() })
	lk, err := locker.New(rc, locker.Options{NodeTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := runScheduler(t, []*jobs.Job{j}, lk, Options{Replica: "queued-r"})
	waitFor(t, 10*time.Second, func() bool { return len(l.snapshot()) > 0 })

	slot := slotAhead(maxClaimAhead + 200*time.Millisecond)
	waitUntil(claimsOut(s, slot).Add(-150 * time.Millisecond)) // before its claim goes out
	proxy.Hold(redistest.ToClient)
	probe := make(chan error, 1)
	go func() {
		_, err := lk.Obtain(context.Background(), locker.Claim{Key: "queued-probe", MetaKey: "queued-probe:meta", TTL: 5 * time.Second, Unwatched: true})
		probe <- err
	}()
	waitUntil(slot.Add(1500 * time.Millisecond))
	proxy.Release(redistest.ToClient)
	if err := <-probe; err != nil {
		t.Fatalf("the held call: %v", err)
	}
	next := slot.Add(time.Second)
	c := newClient(t, srv)
	// The skip is recorded once its window closes (slot + 1 s + 2 s skew).
	waitFor(t, 10*time.Second, func() bool { m, ok := readMark(t, c, j.Name, slot); return ok && m.Ended })

	m, _ := readMark(t, c, j.Name, slot)
	if m.Record.Outcome != store.OutcomeSkipped || m.Record.Reason != store.ReasonLate || m.Token != "" {
		t.Errorf("slot %v: record %+v, token %q; want skipped (late) with no claim", slot, m.Record, m.Token)
	}
	ran := false
	for _, e := range l.snapshot() {
		if e.slot.Equal(slot) {
			t.Errorf("slot %v ran at %v, want not (its claim was never sent)", slot, e.start)
		}
		ran = ran || e.slot.Equal(next)
	}
	if !ran {
		t.Errorf("slot %v did not run, want it run once the held reply came", next)
	}
	if got := s.jobs[0].metrics.claimErrors.Load(); got != 0 {
		t.Errorf("claim errors: got %d, want 0 (a claim queued here did not fail on Redis)", got)
	}
}

// steppedClock is the real clock plus an offset that a test changes.
type steppedClock struct{ offset atomic.Int64 }

func (c *steppedClock) Now() time.Time                 { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *steppedClock) NewTimer(d time.Duration) Timer { return RealClock().NewTimer(d) }

// TestClaimAheadClockStep: a replica's clock steps 50 ms ahead after its
// last clock check (the next is an hour away). Its claims, sent ahead of
// their slots, are still early enough for Redis (within claimAhead), and
// its clock says the slot has come 50 ms before it has: the runs must
// still start at their slots on Redis's clock, as the claims' replies
// tell (locker.Lease.Due), never early.
func TestClaimAheadClockStep(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	var js []*jobs.Job
	for i := range 10 {
		js = append(js, testJob(t, fmt.Sprintf("stepped%d", i), "* * * * * *", fn, nil))
	}
	clk := &steppedClock{}
	startInstance(t, srv, js, Options{Replica: "stepped", Clock: clk, ClockCheck: time.Hour})
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) > 0 })
	clk.offset.Store(int64(50 * time.Millisecond))
	from := slotAhead(claimAhead + 100*time.Millisecond)
	waitUntil(from.Add(3*time.Second + 500*time.Millisecond))
	runs := 0
	for _, e := range l.snapshot() {
		if e.slot.Before(from) {
			continue
		}
		runs++
		if e.start.Before(e.slot) {
			t.Errorf("job %s slot %v started %v early", e.job, e.slot.Format(time.TimeOnly), e.slot.Sub(e.start))
		}
	}
	if runs < 30 {
		t.Errorf("runs from %v: got %d, want the 10 jobs' 3 slots at least", from.Format(time.TimeOnly), runs)
	}
}

// TestEarlyReplyReadLate: a slot's claim goes out maxClaimAhead before it,
// while the run of the slot before still holds the job's lease, and Redis
// answers at once that it is early (overlap forbid: wait until the slot is
// due). The wait, counted by Redis from when it ran the claim, is over when
// the reply is read:
//   - a proxy holds the reply from the moment the claim goes out (within
//     the node timeout) until 50 ms after the slot: the claim is sent
//     again at once and the slot runs. It used to wait all of it again
//     from when the reply was read, and the next slot's claim, sent ahead
//     meanwhile, won first and passed the slot over (late);
//   - held until 400 ms after the slot, the reply took 920 ms: a claim
//     sent again at that pace would be answered past the next slot, so
//     the slot is recorded late (a replica or a Redis that far behind
//     would spend more on a claim cut short than on a skip);
//   - the replica pauses for 1.8 s as it reads the reply (its clock
//     jumps), past the next slot: the slot is recorded late, as the reply
//     came too late. It used to be recorded as a clock fault.
func TestEarlyReplyReadLate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		hold  time.Duration // the reply is held until this long after the slot
		pause time.Duration // the replica's clock jumps this much as it reads the reply
		runs  bool          // the slot runs; else it is recorded late
	}{
		{"reply held until after the slot", 50 * time.Millisecond, 0, true},
		{"reply held too long for a retry", 400 * time.Millisecond, 0, false},
		{"replica paused past the next slot", 0, 1800 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{})
			p := redistest.StartProxyFor(t, srv)
			const timeout = 3 * time.Second // the held reply is an answer, not lost
			c := clientAtTimeout(t, p.Addr(), timeout)
			var slotArg atomic.Value // the slot, as its claim carries it
			slotArg.Store("")
			carries := func(cmd redis.Cmder) bool {
				s := slotArg.Load().(string)
				return s != "" && strings.Contains(fmt.Sprint(cmd.Args()...), s)
			}
			var sent, early atomic.Bool
			c.AddHook(redistest.BeforeHook(func(cmd redis.Cmder) {
				if carries(cmd) && sent.CompareAndSwap(false, true) && tc.hold > 0 {
					p.Hold(redistest.ToClient)
				}
			}))
			clk := &jumpClock{base: RealClock()}
			var read atomic.Bool
			c.AddHook(redistest.AfterHook(func(cmd redis.Cmder) {
				if c, ok := cmd.(*redis.Cmd); ok && carries(cmd) && read.CompareAndSwap(false, true) {
					// The claim's reply, read first.
					early.Store(strings.Contains(fmt.Sprint(c.Val()), "early"))
					clk.off.Store(int64(tc.pause))
				}
			}))
			lk, err := locker.New(c, locker.Options{NodeTimeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			l := &ledger{}
			fn := registerLedgerFunc(l, behaviour{sleep: 800 * time.Millisecond}) // past the next slot's claim
			// One job: another's claim, queued behind the held one, would
			// be sent when the replies come, before the finish of the run
			// before.
			js := []*jobs.Job{testJob(t, "readlate", "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 })}
			s := runScheduler(t, js, lk, Options{Replica: "readlate", Clock: clk, ClockCheck: time.Hour})
			waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) > 0 })
			// Claims go out as early as they may, from the slot after next
			// (the next one's may be planned already).
			s.ahead.observe(maxClaimAhead)
			slot := slotAhead(maxClaimAhead + 1500*time.Millisecond)
			waitUntil(slot.Add(-maxClaimAhead - 250*time.Millisecond))
			if got := s.ahead.ahead(); got != maxClaimAhead {
				t.Fatalf("claim-ahead: got %v, want %v", got, maxClaimAhead)
			}
			slotArg.Store(strconv.FormatInt(slot.Unix(), 10))
			if tc.hold > 0 {
				waitUntil(slot.Add(tc.hold))
				if !sent.Load() {
					t.Fatalf("no claim of slot %v went out by %v after it", slot.Format(time.TimeOnly), tc.hold)
				}
				p.Release(redistest.ToClient)
			}
			if tc.runs {
				waitUntil(slot.Add(2500 * time.Millisecond))
				checkEvery(t, l.snapshot(), js, slot, slot)
			} else {
				rc := newClient(t, srv)
				var m store.Mark
				waitFor(t, 10*time.Second, func() bool { m, _ = readMark(t, rc, "readlate", slot); return m.Ended })
				if m.Record.Outcome != store.OutcomeSkipped || m.Record.Reason != store.ReasonLate {
					t.Errorf("slot %v: got %s (%s), want skipped (late)", slot.Format(time.TimeOnly), m.Record.Outcome, m.Record.Reason)
				}
			}
			if !early.Load() {
				t.Errorf("the claim's first reply: not early, want early (else the test shows nothing)")
			}
		})
	}
}
