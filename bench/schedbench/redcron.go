package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/schedule"
)

// funcName is the Go job function every benchmark job is bound to.
const funcName = "schedbench.record"

// current is the scenario whose ledger the registered function writes to.
var current atomic.Pointer[redcronRun]

// traceOn (-trace) wraps each locker to time its Obtain calls.
var traceOn bool

func init() {
	jobs.Register(funcName, func(ctx context.Context, r jobs.Run, _ struct{}) error {
		start := time.Now()
		rr := current.Load()
		if rr == nil {
			return nil
		}
		rep := rr.replicaIdx[r.Replica]
		rr.ledger.add(entry{
			job: int32(rr.jobIdx[r.Job]), replica: int32(rep), slot: r.Slot.Unix(), fence: r.Fence,
			start: start, lagOwn: start.Add(rr.offsets[rep]).Sub(r.Slot),
		})
		return nil
	})
}

// countWriter counts the scheduler's warn-level log lines (skipped slots,
// claim failures) and keeps the first few to print.
type countWriter struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.n++
	if len(w.first) < 5 {
		w.first = append(w.first, string(p))
	}
	w.mu.Unlock()
	return len(p), nil
}

// redcronRun is one scenario of redcron: n scheduler.Scheduler instances in
// this process, each with its own go-redis client and locker.New.
type redcronRun struct {
	ledger     *ledger
	jobIdx     map[string]int
	replicaIdx map[string]int
	offsets    []time.Duration
	logs       *countWriter

	traces []*tracingLocker
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   []error
}

func jobName(i int) string { return fmt.Sprintf("job%04d", i) }

// benchJobs builds the in-code jobs, as jobs.Load would from YAML: spec,
// Go func, defaults of jobs.yaml (lock_ttl 30s, overlap forbid,
// catchup_window 1m, one attempt).
func benchJobs(n int, spec string) ([]*jobs.Job, error) {
	sched, err := schedule.Parse(spec, time.UTC)
	if err != nil {
		return nil, err
	}
	js := make([]*jobs.Job, n)
	for i := range js {
		js[i] = &jobs.Job{
			Name: jobName(i), Spec: spec, Schedule: sched, Location: time.UTC,
			LockTTL: 30 * time.Second, Overlap: jobs.OverlapForbid,
			Retry:         jobs.Retry{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Minute},
			CatchupWindow: time.Minute, Enabled: true, Kind: jobs.KindFunc, Func: funcName,
		}
	}
	return js, nil
}

func startRedcron(clients []*redis.Client, nJobs int, spec string, offsets []time.Duration, l *ledger) (*redcronRun, error) {
	rr := &redcronRun{ledger: l, jobIdx: map[string]int{}, replicaIdx: map[string]int{}, offsets: offsets, logs: &countWriter{}}
	for i := range nJobs {
		rr.jobIdx[jobName(i)] = i
	}
	current.Store(rr)
	ctx, cancel := context.WithCancel(context.Background())
	rr.cancel = cancel
	rr.errs = make([]error, len(clients))
	scheds := make([]*scheduler.Scheduler, len(clients))
	for i, c := range clients {
		name := "r" + strconv.Itoa(i)
		rr.replicaIdx[name] = i
		js, err := benchJobs(nJobs, spec) // each replica loads its own config
		if err != nil {
			cancel()
			return nil, err
		}
		real, err := locker.New(c, locker.Options{NodeTimeout: 500 * time.Millisecond})
		if err != nil {
			cancel()
			return nil, err
		}
		var lk scheduler.Locker = real
		if traceOn {
			tl := &tracingLocker{next: real}
			rr.traces = append(rr.traces, tl)
			lk = tl
		}
		// Warn level: skipped slots and claim failures only, counted.
		logger := zerolog.New(rr.logs).Level(zerolog.WarnLevel)
		s, err := scheduler.New(js, lk, scheduler.Options{
			Replica: name,
			Clock:   scheduler.OffsetClock(scheduler.RealClock(), offsets[i]),
			Logger:  &logger,
		})
		if err != nil {
			cancel()
			return nil, err
		}
		scheds[i] = s
	}
	for i, s := range scheds {
		rr.wg.Add(1)
		go func() {
			defer rr.wg.Done()
			rr.errs[i] = s.Run(ctx)
		}()
	}
	return rr, nil
}

func (rr *redcronRun) stop() error {
	rr.cancel()
	rr.wg.Wait()
	for i, t := range rr.traces {
		t.report("r" + strconv.Itoa(i))
	}
	for _, err := range rr.errs {
		if err != nil {
			return err
		}
	}
	return nil
}
