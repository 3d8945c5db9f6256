package scheduler

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/schedule"
	"github.com/redcron/redcron/scheduler/store"
)

// entry is one start of a run, as the job saw it.
type entry struct {
	job     string
	slot    time.Time
	fence   int64
	replica string
	attempt int
	manual  bool
	start   time.Time // real time
	end     time.Time // real time
	cause   error     // context.Cause when the run ended by its context
}

// ledger records every run start of the Go jobs of one test.
type ledger struct {
	mu      sync.Mutex
	entries []entry
}

func (l *ledger) add(e entry) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	return len(l.entries) - 1
}

func (l *ledger) finish(i int, cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[i].end = time.Now()
	l.entries[i].cause = cause
}

func (l *ledger) snapshot() []entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]entry(nil), l.entries...)
}

var funcSeq atomic.Int64

// behaviour is what a ledger job does once it has recorded its start.
type behaviour struct {
	sleep time.Duration // how long it runs unless its ctx ends
	fail  int           // fail the first fail attempts
	// done, if set, is called as the run returns (its ledger entry ended):
	// a test injects a fault between a run and its Finish.
	done func(jobs.Run)
}

// registerLedgerFunc registers a fresh Go job function that appends to l.
func registerLedgerFunc(l *ledger, b behaviour) string {
	name := fmt.Sprintf("ledger%d", funcSeq.Add(1))
	jobs.Register(name, func(ctx context.Context, r jobs.Run, _ struct{}) error {
		i := l.add(entry{job: r.Job, slot: r.Slot, fence: r.Fence, replica: r.Replica, attempt: r.Attempt, manual: r.Manual, start: time.Now()})
		var cause error
		defer func() { l.finish(i, cause) }()
		if b.sleep > 0 {
			t := time.NewTimer(b.sleep)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				cause = context.Cause(ctx)
				return ctx.Err()
			}
		}
		if b.done != nil {
			defer b.done(r)
		}
		if r.Attempt <= b.fail {
			return fmt.Errorf("attempt %d fails on purpose", r.Attempt)
		}
		return nil
	})
	return name
}

// testJob builds a Go func job in code, as jobs.Load would.
func testJob(t *testing.T, name, spec, fn string, mod func(*jobs.Job)) *jobs.Job {
	t.Helper()
	s, err := schedule.Parse(spec, time.UTC)
	if err != nil {
		t.Fatalf("schedule.Parse(%q): %v", spec, err)
	}
	j := &jobs.Job{
		Name: name, Spec: spec, Schedule: s, Location: time.UTC,
		LockTTL: 3 * time.Second, Overlap: jobs.OverlapForbid,
		Retry:         jobs.Retry{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Minute},
		CatchupWindow: time.Minute, Enabled: true, Kind: jobs.KindFunc, Func: fn,
	}
	if mod != nil {
		mod(j)
	}
	return j
}

// newClient returns a go-redis client with short timeouts, closed at cleanup.
func newClient(t *testing.T, srv *redistest.Server) *redis.Client {
	t.Helper()
	return clientAt(t, srv.Addr())
}

// clientAt is newClient for an address (a proxy's).
func clientAt(t *testing.T, addr string) *redis.Client {
	t.Helper()
	return clientAtTimeout(t, addr, 500*time.Millisecond)
}

// clientAtTimeout is clientAt with the read and write timeout d.
func clientAtTimeout(t *testing.T, addr string, d time.Duration) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: d, WriteTimeout: d,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 20, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// instance is one running scheduler of a test.
type instance struct {
	s      *Scheduler
	cancel context.CancelFunc
	done   chan error
}

// startInstance starts a scheduler on its own client to srv; its Run is
// stopped (and waited for) at cleanup or by stop.
func startInstance(t *testing.T, srv *redistest.Server, js []*jobs.Job, opts Options) *instance {
	t.Helper()
	return startInstanceAt(t, srv.Addr(), js, opts)
}

// startInstanceAt is startInstance on a client to addr (a proxy's).
func startInstanceAt(t *testing.T, addr string, js []*jobs.Job, opts Options) *instance {
	t.Helper()
	return startInstanceOn(t, clientAt(t, addr), js, opts)
}

// startInstanceOn is startInstance on client c.
func startInstanceOn(t *testing.T, c *redis.Client, js []*jobs.Job, opts Options) *instance {
	t.Helper()
	return startInstanceTuned(t, c, js, opts, nil)
}

// startInstanceTuned is startInstanceOn with tune (when not nil) called on
// the Scheduler before it runs, to set what Options do not.
func startInstanceTuned(t *testing.T, c *redis.Client, js []*jobs.Job, opts Options, tune func(*Scheduler)) *instance {
	t.Helper()
	l := newLocker(t, c)
	if opts.Logger == nil {
		opts.Logger = testLogger(t, testLogLevel)
	}
	s, err := New(js, l, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tune != nil {
		tune(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { in.done <- s.Run(ctx) }()
	t.Cleanup(func() { in.stop(t) })
	return in
}

// stop cancels Run and waits for it (bounded); it may be called twice.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	select {
	case err, ok := <-in.done:
		if ok && err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
		if ok {
			close(in.done)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Run did not return")
	}
}

// checkOnce asserts that no (job, slot) ran twice (first attempts), and
// that fences increase with slots per job for slots from `from` on (before
// it, replicas starting with different clocks may catch up an older slot
// after a newer one); it returns the runs per job and slot.
func checkOnce(t *testing.T, es []entry, from time.Time) map[string]map[int64]entry {
	t.Helper()
	got := map[string]map[int64]entry{}
	for _, e := range es {
		if e.attempt > 1 {
			continue
		}
		if e.slot.Before(from) {
			if prev, dup := got["before:"+e.job][e.slot.Unix()]; dup {
				t.Errorf("job %s slot %v ran twice: on %s and %s", e.job, e.slot, prev.replica, e.replica)
			}
			if got["before:"+e.job] == nil {
				got["before:"+e.job] = map[int64]entry{}
			}
			got["before:"+e.job][e.slot.Unix()] = e
			continue
		}
		m := got[e.job]
		if m == nil {
			m = map[int64]entry{}
			got[e.job] = m
		}
		if prev, dup := m[e.slot.Unix()]; dup {
			t.Errorf("job %s slot %v ran twice: on %s (fence %d) and %s (fence %d)", e.job, e.slot, prev.replica, prev.fence, e.replica, e.fence)
			continue
		}
		m[e.slot.Unix()] = e
	}
	for job, m := range got {
		if strings.HasPrefix(job, "before:") {
			delete(got, job)
			continue
		}
		slots := make([]int64, 0, len(m))
		for s := range m {
			slots = append(slots, s)
		}
		sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
		for i := 1; i < len(slots); i++ {
			if a, b := m[slots[i-1]], m[slots[i]]; b.fence <= a.fence {
				t.Errorf("job %s: fence regressed: slot %d fence %d, then slot %d fence %d", job, slots[i-1], a.fence, slots[i], b.fence)
			}
		}
	}
	return got
}

// readMark reads the mark of (job, slot) under the default prefix; ok is
// false when there is none.
func readMark(t *testing.T, c *redis.Client, job string, slot time.Time) (m store.Mark, ok bool) {
	t.Helper()
	h, err := c.HGetAll(context.Background(), store.JobKeys("", job).Mark(slot)).Result()
	if err != nil {
		t.Fatalf("HGETALL mark of (%s, %v): %v", job, slot, err)
	}
	m, ok, err = store.ParseMark(h)
	if err != nil {
		t.Fatalf("mark of (%s, %v): %v", job, slot, err)
	}
	return m, ok
}

// seenBefore sets a job's first sight to at, as if the cluster had known
// the job since then (so that catch-up may run slots from then on).
func seenBefore(t *testing.T, c *redis.Client, job string, at time.Time) {
	t.Helper()
	if err := c.HSet(context.Background(), store.JobKeys("", job).Meta(), "first", at.Unix()).Err(); err != nil {
		t.Fatal(err)
	}
}

// newLocker is a single-node locker on c.
func newLocker(t *testing.T, c *redis.Client) *locker.Locker {
	t.Helper()
	l, err := locker.New(c, locker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runScheduler runs a scheduler on l until the test ends.
func runScheduler(t *testing.T, js []*jobs.Job, l Locker, opts Options) *Scheduler {
	t.Helper()
	opts.Logger = testLogger(t, zerolog.WarnLevel)
	s, err := New(js, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	})
	return s
}

// measured reports whether the scheduler's clock watch has measured once.
func measured(s *Scheduler) bool {
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	return s.clock.measured
}

var testLogLevel = zerolog.WarnLevel

// unix is the UTC instant of Unix second sec.
func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// testLogger logs to the test at level and above.
func testLogger(t *testing.T, level zerolog.Level) *zerolog.Logger {
	l := zerolog.New(zerolog.NewTestWriter(t)).Level(level).With().Timestamp().Logger()
	return &l
}
