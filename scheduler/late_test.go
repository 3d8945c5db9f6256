package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
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

// jumpHook is a go-redis hook that moves the clock forward by two minutes
// once, right after the reply of the first claim that won has arrived: the
// replica "paused" between Redis granting the claim and its reading the
// reply.
type jumpHook struct {
	clk  *jumpClock
	done atomic.Bool
}

func (h *jumpHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *jumpHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(cmd)
		return err
	}
}

func (h *jumpHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			h.after(c)
		}
		return err
	}
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

var _ redis.Hook = (*jumpHook)(nil)

// TestClaimConfirmedTooLateDoesNotRun: a claim confirmed after its claim
// deadline (the replica was paused between Redis granting it and reading
// the reply) does not run: it would start later than the catch-up window
// allows. The slot stays decided, recorded as skipped (late).
func TestClaimConfirmedTooLateDoesNotRun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv)
	clk := &jumpClock{base: RealClock()}
	c.AddHook(&jumpHook{clk: clk})
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
	var late store.Mark
	waitFor(t, 5*time.Second, func() bool {
		keys, _ := srv.Client(t).Keys(context.Background(), store.JobKeys("", "late").Mark(time.Unix(0, 0))[:len("redcron:{late}:slot:")]+"*").Result()
		for _, k := range keys {
			h, _ := srv.Client(t).HGetAll(context.Background(), k).Result()
			if m, ok, _ := store.ParseMark(h); ok && m.Ended && m.Record.Reason == store.ReasonLate {
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
