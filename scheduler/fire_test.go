package scheduler

import (
	"testing"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

// TestPrevWait: the claim of a slot waits for the slot before it only
// while a step-in for that one may still arrive after the claim goes out
// (a replica that claims has not beaten since it was due), and never past
// its own due.
func TestPrevWait(t *testing.T) {
	t.Parallel()
	slot := time.Unix(1_800_000_000, 0)
	prev := slot.Add(-time.Second)
	handOff := 3 * DefaultShareBeat
	stalled := prev.Add(-250 * time.Millisecond) // beat last just before prev
	for _, tc := range []struct {
		name  string
		beat  time.Duration // Options.ShareBeat (negative: sharing off)
		other time.Time     // the other replica's last beat (zero: no view)
		prev  time.Time
		ahead time.Duration
		want  time.Time // zero: no wait
	}{
		{"claims 100 ms ahead: the step-in came before", DefaultShareBeat, stalled, prev, claimAhead, time.Time{}},
		{"claims 300 ms ahead", DefaultShareBeat, stalled, prev, 300 * time.Millisecond, prev.Add(handOff + 300*time.Millisecond)},
		{"claims 450 ms ahead: at most until due", DefaultShareBeat, stalled, prev, 450 * time.Millisecond, slot},
		{"every replica beat since", DefaultShareBeat, prev.Add(300 * time.Millisecond), prev, 450 * time.Millisecond, time.Time{}},
		{"silent long before: not first then", DefaultShareBeat, prev.Add(-3 * handOff), prev, 450 * time.Millisecond, time.Time{}},
		// The slot before was decided up to maxClaimAhead before it, on a
		// view up to HandOff old, that counted a replica live for HandOff
		// after its beat.
		{"silent since 1.5 s before: first in an older view", DefaultShareBeat, prev.Add(-1500 * time.Millisecond), prev, 450 * time.Millisecond, slot},
		{"no view", DefaultShareBeat, time.Time{}, prev, 450 * time.Millisecond, time.Time{}},
		{"slot before not known", DefaultShareBeat, stalled, time.Time{}, 450 * time.Millisecond, time.Time{}},
		{"sharing off: no step-ins", -1, stalled, prev, 450 * time.Millisecond, time.Time{}},
		{"two-second period", DefaultShareBeat, slot.Add(-2250 * time.Millisecond), slot.Add(-2 * time.Second), 450 * time.Millisecond, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := slot.Add(-tc.ahead - dispatchLead) // when the bid is built
			s := prevWaitScheduler(tc.beat, now, tc.other)
			js := &jobState{job: &jobs.Job{Name: "j"}}
			if got := s.prevWait(js, tc.prev, slot, 0, tc.ahead); !got.Equal(tc.want) {
				t.Errorf("prevWait: got %v, want %v", got, tc.want)
			}
		})
	}

	// With jitter, whatever the slots' jitters: a wait ends at the slot's
	// due at the latest, and after its claim goes out.
	t.Run("jitter", func(t *testing.T) {
		js := &jobState{job: &jobs.Job{Name: "j", Jitter: 900 * time.Millisecond}}
		waits := 0
		for i := range 200 {
			slot := slot.Add(time.Duration(i) * time.Second)
			prev := slot.Add(-time.Second)
			jitter := Jitter("j", slot, js.job.Jitter)
			due, ahead := slot.Add(jitter), 300*time.Millisecond
			s := prevWaitScheduler(DefaultShareBeat, due.Add(-ahead-dispatchLead), prev.Add(-time.Millisecond))
			got := s.prevWait(js, prev, slot, jitter, ahead)
			if got.IsZero() {
				continue
			}
			waits++
			if got.After(due) || !got.After(due.Add(-ahead)) {
				t.Errorf("slot %d (due %v): wait until %v, want within (due - %v, due]", slot.Unix(), due, got, ahead)
			}
		}
		if waits == 0 {
			t.Errorf("waits over 200 slots with 900 ms jitter: got 0, want some")
		}
	})
}

// prevWaitScheduler is a Scheduler with just what prevWait reads, at now,
// with a fresh view in which one other replica that claims last beat at
// other (zero: no view yet).
func prevWaitScheduler(beat time.Duration, now, other time.Time) *Scheduler {
	s := &Scheduler{opts: Options{ShareBeat: beat, Replica: "me", Clock: newFakeClock(now)}, store: &store.Store{}}
	s.share = newShare(s)
	if !other.IsZero() {
		s.share.view.Store(s.share.newShareView(store.Live{Now: now, Replicas: map[string]store.LiveReplica{
			"me":    {Beat: now, State: stateClaims + ":h"},
			"other": {Beat: other, State: stateClaims + ":h"},
		}}, now))
	}
	return s
}

// TestEarlyNext: an early claim's wait, counted by Redis from when it ran
// the claim, is read took after the attempt began: at least wait-took is
// left, at most wait, and within those this replica's clock decides. A
// wait that ends past the claim's bound gives the slot up: as a clock
// fault when Redis's clock says the slot is not due before then though
// this one does, as late when the reply came too late (a retry at the
// pace of the attempt would be answered past the bound).
func TestEarlyNext(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	skew := DefaultMaxClockSkew
	for _, tc := range []struct {
		name                       string
		wait, took, toDue, toUntil time.Duration
		want                       earlyStep
	}{
		{"answered at once, clocks agree", 400 * ms, 2 * ms, 399 * ms, 1399 * ms, earlyStep{sleep: 399 * ms}},
		{"answered at once, clock behind Redis's", 400 * ms, 2 * ms, 450 * ms, 1450 * ms, earlyStep{sleep: 400 * ms}},
		{"answered at once, clock ahead of Redis's", 400 * ms, 2 * ms, 300 * ms, 1300 * ms, earlyStep{sleep: 398 * ms, recheck: true}},
		{"read 300 ms late", 400 * ms, 300 * ms, 100 * ms, 1100 * ms, earlyStep{sleep: 100 * ms}},
		{"read after the wait ended", 400 * ms, 600 * ms, -200 * ms, 800 * ms, earlyStep{}},
		{"read after the wait ended, too late for a retry at its pace", 400 * ms, 1100 * ms, -700 * ms, 300 * ms, earlyStep{giveUp: store.ReasonLate}},
		{"queued long, too late for a retry at its pace", 400 * ms, 900 * ms, 100 * ms, 1000 * ms, earlyStep{sleep: 100 * ms, giveUp: store.ReasonLate}},
		{"queued, then answered at once", 400 * ms, 900 * ms, 398 * ms, 1398 * ms, earlyStep{sleep: 398 * ms}},
		{"read after the bound", 400 * ms, 1600 * ms, -1200 * ms, -200 * ms, earlyStep{giveUp: store.ReasonLate}},
		{"the attempt's start measured after the read (clock stepped back)", 400 * ms, -50 * ms, 399 * ms, 1399 * ms, earlyStep{sleep: 400 * ms}},
		{"clock ahead past the bound", 900 * ms, 2 * ms, 100 * ms, 800 * ms, earlyStep{sleep: 898 * ms, recheck: true, giveUp: store.ReasonClock}},
		{"clock ahead by more than max_clock_skew", 3 * time.Second, 2 * ms, 100 * ms, time.Minute, earlyStep{sleep: 3*time.Second - 2*ms, recheck: true, giveUp: store.ReasonClock}},
		{"paused job before a slot past max_clock_skew: no clock fault", 3 * time.Second, 2 * ms, 3 * time.Second, time.Minute, earlyStep{sleep: 3 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := earlyNext(tc.wait, tc.took, tc.toDue, tc.toUntil, skew); got != tc.want {
				t.Errorf("earlyNext(%v, %v, %v, %v): got %+v, want %+v", tc.wait, tc.took, tc.toDue, tc.toUntil, got, tc.want)
			}
		})
	}
}
