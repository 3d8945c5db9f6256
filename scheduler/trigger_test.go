package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// TestTrigger: a manual trigger runs the job now, under its own claim and a
// fence above every earlier one, even while the job is paused; it honours
// overlap forbid across instances, refuses unknown and disabled jobs, and
// is refused outside Run.
func TestTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	quick := registerLedgerFunc(l, behaviour{})
	slow := registerLedgerFunc(l, behaviour{sleep: 3 * time.Second})
	const yearly = "0 0 1 1 *" // never due during the test
	js := []*jobs.Job{
		testJob(t, "report", yearly, quick, nil),
		testJob(t, "long", yearly, slow, nil),
		testJob(t, "off", yearly, quick, func(j *jobs.Job) { j.Enabled = false }),
	}

	idle, err := New(js, newLocker(t, newClient(t, srv)), Options{Replica: "idle", Logger: testLogger(t, zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := idle.Trigger(ctx, "report"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Trigger before Run: got %v, want ErrNotRunning", err)
	}

	a := startInstance(t, srv, js, Options{Replica: "a"})
	b := startInstance(t, srv, js, Options{Replica: "b"})
	if err := newClient(t, srv).Set(ctx, store.JobKeys("", "report").Paused(), "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	slot1, f1, err := a.s.Trigger(ctx, "report")
	if err != nil {
		t.Fatalf("Trigger on a paused job: %v", err)
	}
	// Overlap forbid: the second trigger must wait until the first run
	// ended and released the job's lease.
	rc := newClient(t, srv)
	waitFor(t, 5*time.Second, func() bool { return rc.Exists(ctx, store.JobKeys("", "report").Lease()).Val() == 0 })
	slot2, f2, err := b.s.Trigger(ctx, "report")
	if err != nil {
		t.Fatalf("second Trigger: %v", err)
	}
	if f2 <= f1 {
		t.Fatalf("fences of two triggers: got %d then %d, want strictly increasing", f1, f2)
	}
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) >= 2 })
	got := map[int64]entry{}
	for _, e := range l.snapshot() {
		got[e.fence] = e
	}
	for _, want := range []struct {
		fence   int64
		slot    time.Time
		replica string
	}{{f1, slot1, "a"}, {f2, slot2, "b"}} {
		e, ok := got[want.fence]
		if !ok || !e.slot.Equal(want.slot) || e.replica != want.replica || e.job != "report" {
			t.Errorf("run with fence %d: got %+v, want job report, slot %v on %s", want.fence, e, want.slot, want.replica)
		}
	}

	if _, _, err := a.s.Trigger(ctx, "long"); err != nil {
		t.Fatalf("Trigger long: %v", err)
	}
	if _, _, err := b.s.Trigger(ctx, "long"); !errors.Is(err, locker.ErrNotObtained) {
		t.Fatalf("Trigger while it runs on another instance (forbid): got %v, want locker.ErrNotObtained", err)
	}
	for _, tc := range []struct {
		job  string
		want error
	}{{"nope", ErrUnknownJob}, {"off", ErrJobDisabled}} {
		if _, _, err := a.s.Trigger(ctx, tc.job); !errors.Is(err, tc.want) {
			t.Errorf("Trigger %q: got %v, want %v", tc.job, err, tc.want)
		}
	}

	a.stop(t) // waits for the long run: a trigger's run is owned like any other
	if _, _, err := a.s.Trigger(ctx, "report"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Trigger after Run returned: got %v, want ErrNotRunning", err)
	}
	for _, e := range l.snapshot() {
		if e.job == "long" && e.end.IsZero() {
			t.Fatalf("the triggered long run was still going after Run returned")
		}
	}
}
