package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// recorderScheduler builds (does not run) a scheduler of js on srv for
// the recorder's tests: every job was known to the cluster a minute
// before slot, and its warn lines go to the returned buffer.
func recorderScheduler(t *testing.T, srv *redistest.Server, replica string, js []*jobs.Job, slot time.Time) (*Scheduler, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := zerolog.New(logs)
	s, err := New(js, newLocker(t, newClient(t, srv)), Options{Replica: replica, Logger: &log})
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
// and so is a skip found after its run's mark could have expired.
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
	// Past retention (10s) + skew (2s): too late to tell whether it ran.
	r.max++
	old := slot.Add(-30 * time.Second)
	r.add(s.jobs[0], old, store.ReasonOutage, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stop := r.start(ctx)
	t.Cleanup(cancel)
	c := newClient(t, srv)
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
	stop()

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
	if want := fmt.Sprintf(`"slots":%d,"max_pending":%d,"message":"skip records dropped: too many pending"`, n-bound, bound+1); !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
	if want := `"slots":1,"message":"skip records dropped: written too late to tell whether the slot ran"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
	if _, ok := readMark(t, c, s.jobs[0].job.Name, old); ok {
		t.Errorf("the slot past its retention: got a record, want none")
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
	r.start(ctx)()

	c := newClient(t, srv)
	if m, ok := readMark(t, c, "flush-a", slot); !ok || m.Record.Reason != store.ReasonOutage {
		t.Errorf("the due skip: got %+v (present %v), want it written at shutdown", m.Record, ok)
	}
	if want := `"slots":1,"message":"shutdown: skip records not yet due are not written"`; !strings.Contains(logs.String(), want) {
		t.Errorf("log: no line with %s", want)
	}
}
