package scheduler

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
)

// jumpClock is the real clock plus an offset that a test can move, as a
// replica paused (GC, SIGSTOP) in the middle of a claim sees time jump.
type jumpClock struct {
	base Clock
	off  atomic.Int64
}

func (c *jumpClock) Now() time.Time                 { return c.base.Now().Add(time.Duration(c.off.Load())) }
func (c *jumpClock) NewTimer(d time.Duration) Timer { return c.base.NewTimer(d) }

// jumpLocker jumps the clock past every claim deadline during the first
// claim, after Redis granted it.
type jumpLocker struct {
	l     *locker.Locker
	clk   *jumpClock
	once  atomic.Bool
	first atomic.Value // the first claim's mark key
}

func (j *jumpLocker) Obtain(ctx context.Context, c locker.Claim) (*locker.Lease, error) {
	lease, err := j.l.Obtain(ctx, c)
	if err == nil && j.once.CompareAndSwap(false, true) {
		j.first.Store(c.MarkKey)
		j.clk.off.Store(int64(2 * time.Minute))
	}
	return lease, err
}

// TestClaimConfirmedTooLateDoesNotRun: a claim confirmed after its claim
// deadline (the replica was paused between its deadline check and the
// send) does not run: the slot's earlier mark may have expired meanwhile.
// The slot stays claimed, recorded as skipped:late.
func TestClaimConfirmedTooLateDoesNotRun(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	c := newClient(t, srv)
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	clk := &jumpClock{base: RealClock()}
	jl := &jumpLocker{l: locker.New(c, locker.Options{}), clk: clk}
	js := []*jobs.Job{testJob(t, "late", "* * * * * *", fn, func(j *jobs.Job) { j.CatchupWindow = 0 })}
	s, err := New(js, jl, Options{Replica: "paused", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, func() bool { return jl.first.Load() != nil })
	mark := jl.first.Load().(string)
	waitFor(t, 5*time.Second, func() bool { return c.Get(context.Background(), mark).Val() == "skipped:late" })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, e := range l.snapshot() {
		if jobKeys(DefaultPrefix, "late").slot(e.slot) == mark {
			t.Fatalf("the slot confirmed too late ran (fence %d), want it skipped", e.fence)
		}
	}
}
