package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// waitTimers waits until n timers are armed on clk: synchronisation with
// the goroutine under test, not timing logic.
func waitTimers(t *testing.T, clk *fakeClock, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timers armed: got %d, want %d", clk.Waiting(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRecover(t *testing.T) {
	f := Recover()(func(context.Context, jobs.Run) error { panic("boom") })
	err := f(context.Background(), jobs.Run{})
	if !errors.Is(err, ErrPanic) {
		t.Fatalf("got %v, want an error wrapping ErrPanic", err)
	}
	if got, _ := outcome(context.Background(), err); got != store.OutcomePanic {
		t.Errorf("outcome: got %q, want %q", got, store.OutcomePanic)
	}
}

func TestRetryWithinSlot(t *testing.T) {
	clk := newFakeClock(time.Unix(1000, 0))
	calls := []int{}
	var attempts int
	f := Retry(clk, jobs.Retry{Attempts: 4, Backoff: time.Second, MaxBackoff: 3 * time.Second}, &attempts)(
		func(_ context.Context, r jobs.Run) error {
			calls = append(calls, r.Attempt)
			if r.Attempt < 4 {
				return errors.New("fail")
			}
			return nil
		})
	done := make(chan error, 1)
	go func() { done <- f(context.Background(), jobs.Run{}) }()
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} { // capped at MaxBackoff
		waitTimers(t, clk, 1)
		clk.Advance(d - time.Nanosecond)
		if clk.Waiting() != 1 {
			t.Fatalf("retry fired before its %v backoff", d)
		}
		clk.Advance(time.Nanosecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("got %v, want nil after the 4th attempt", err)
	}
	if len(calls) != 4 || attempts != 4 {
		t.Errorf("attempts: got %v (%d), want [1 2 3 4]", calls, attempts)
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	clk := newFakeClock(time.Unix(1000, 0))
	ctx, cancel := context.WithCancelCause(context.Background())
	n := 0
	f := Retry(clk, jobs.Retry{Attempts: 5, Backoff: time.Second}, nil)(func(context.Context, jobs.Run) error {
		n++
		cancel(errors.New("lease lost"))
		return errors.New("fail")
	})
	if err := f(ctx, jobs.Run{}); err == nil || n != 1 {
		t.Errorf("got err %v after %d attempts, want an error after 1", err, n)
	}
}

func TestTimeoutOnClock(t *testing.T) {
	clk := newFakeClock(time.Unix(1000, 0))
	started := make(chan struct{})
	f := Chain(Timeout(clk, 10*time.Second), Retry(clk, jobs.Retry{Attempts: 3, Backoff: 20 * time.Second}, nil))(
		func(ctx context.Context, r jobs.Run) error {
			if r.Attempt == 1 {
				close(started)
				<-ctx.Done()
				return context.Cause(ctx)
			}
			t.Errorf("attempt %d after the timeout, want none", r.Attempt)
			return nil
		})
	done := make(chan error, 1)
	go func() { done <- f(context.Background(), jobs.Run{}) }()
	<-started
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	err := <-done
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if got, _ := outcome(context.Background(), err); got != store.OutcomeTimeout {
		t.Errorf("outcome: got %q, want %q", got, store.OutcomeTimeout)
	}
}

// TestTimeoutOverrunReturningNil: a function that ignores its context,
// overruns its timeout and then returns nil is recorded as timed out, not
// ok.
func TestTimeoutOverrunReturningNil(t *testing.T) {
	clk := newFakeClock(time.Unix(1000, 0))
	started, release := make(chan struct{}), make(chan struct{})
	f := Timeout(clk, 3*time.Second)(func(ctx context.Context, r jobs.Run) error {
		close(started)
		<-ctx.Done()
		<-release // goes on past its timeout, like a job that sleeps 12 s
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- f(context.Background(), jobs.Run{}) }()
	<-started
	waitTimers(t, clk, 1)
	clk.Advance(3 * time.Second)
	clk.Advance(9 * time.Second)
	close(release)
	err := <-done
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want an error wrapping ErrTimeout", err)
	}
	if got, _ := outcome(context.Background(), err); got != store.OutcomeTimeout {
		t.Errorf("outcome: got %q, want %q", got, store.OutcomeTimeout)
	}
}

// TestOutcomeOfCutRun: a run whose context ended before its function
// returned nil is recorded by the cause, not as ok.
func TestOutcomeOfCutRun(t *testing.T) {
	for _, tc := range []struct {
		cause       error
		out, reason string
	}{
		{locker.ErrLeaseLost, store.OutcomeLeaseLost, ""},
		{fmt.Errorf("%w: %w", locker.ErrLeaseLost, locker.ErrReplaced), store.OutcomeLeaseLost, store.ReasonReplaced},
		{ErrShutdown, store.OutcomeShutdown, ""},
		{nil, store.OutcomeOK, ""},
	} {
		t.Run(fmt.Sprint(tc.cause), func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			if tc.cause != nil {
				cancel(tc.cause)
			}
			defer cancel(nil)
			if out, reason := outcome(ctx, nil); out != tc.out || reason != tc.reason {
				t.Errorf("outcome of a nil return after %v: got (%q, %q), want (%q, %q)", tc.cause, out, reason, tc.out, tc.reason)
			}
		})
	}
}

func TestRetrySkipsBackoffBeyondTimeout(t *testing.T) {
	clk := newFakeClock(time.Unix(1000, 0))
	n := 0
	f := Chain(Timeout(clk, 5*time.Second), Retry(clk, jobs.Retry{Attempts: 3, Backoff: 10 * time.Second}, nil))(
		func(context.Context, jobs.Run) error { n++; return errors.New("fail") })
	if err := f(context.Background(), jobs.Run{}); err == nil || n != 1 {
		t.Errorf("got err %v after %d attempts, want an error after 1 (the 10s backoff outlasts the 5s timeout)", err, n)
	}
}

// TestPanickingJob: a run whose function or wrapper panics is recorded
// with outcome panic and the replica goes on; a panic in one attempt is
// that attempt's failure, and the retry runs.
func TestPanickingJob(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	name := fmt.Sprintf("panics%d", funcSeq.Add(1))
	jobs.Register(name, func(_ context.Context, r jobs.Run, _ struct{}) error {
		if r.Job == "always" || (r.Job == "once" && r.Attempt == 1) {
			panic("boom")
		}
		return nil
	})
	retry := func(j *jobs.Job) {
		j.Retry = jobs.Retry{Attempts: 2, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	}
	js := []*jobs.Job{
		testJob(t, "always", "* * * * * *", name, nil),         // the function panics
		testJob(t, "once", "* * * * * *", name, retry),         // its first attempt panics
		testJob(t, "wrapper", "* * * * * *", name, nil),        // a wrapper panics
		testJob(t, "wrapper-once", "* * * * * *", name, retry), // a wrapper panics on the first attempt
	}
	panicky := func(next RunFunc) RunFunc {
		return func(ctx context.Context, r jobs.Run) error {
			if r.Job == "wrapper" || (r.Job == "wrapper-once" && r.Attempt == 1) {
				panic("wrapper boom")
			}
			return next(ctx, r)
		}
	}
	in := startInstance(t, srv, js, Options{Replica: "r0", Wrappers: []Wrapper{panicky}})
	st := in.s.Store()
	history := func(job string) []store.Record {
		rs, err := st.History(context.Background(), job, store.Page{})
		if err != nil {
			t.Fatalf("history of %s: %v", job, err)
		}
		return rs
	}
	// runs is a job's records of runs: in a stall of the shared machine a
	// slot can be recorded as skipped (late), which is no run to look at
	// here.
	runs := func(job string) []store.Record {
		var out []store.Record
		for _, r := range history(job) {
			if r.Outcome != store.OutcomeSkipped {
				out = append(out, r)
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, j := range js {
			if len(runs(j.Name)) < 2 {
				return false
			}
		}
		return true
	})
	for _, tt := range []struct {
		job, outcome, errHas string
		attempts             int
	}{
		{"always", store.OutcomePanic, "boom", 1},
		{"once", store.OutcomeOK, "", 2},
		{"wrapper", store.OutcomePanic, "wrapper boom", 1},
		{"wrapper-once", store.OutcomeOK, "", 2},
	} {
		t.Run(tt.job, func(t *testing.T) {
			for _, r := range runs(tt.job) {
				if r.Outcome != tt.outcome || !strings.Contains(r.Error, tt.errHas) || r.Attempts != tt.attempts {
					t.Errorf("slot %v: got outcome %q after %d attempts, error %q; want %q after %d, error with %q",
						r.Slot, r.Outcome, r.Attempts, r.Error, tt.outcome, tt.attempts, tt.errHas)
				}
			}
		})
	}
}
