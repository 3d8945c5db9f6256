package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
)

func TestClaimLead(t *testing.T) {
	t.Parallel()
	type step struct {
		advance time.Duration // clock moves on first
		took    time.Duration // then a claim reports this (0: none)
		want    time.Duration // then ahead() says
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fast claims keep the least", []step{
			{0, 5 * time.Millisecond, claimAhead},
			{time.Second, 40 * time.Millisecond, claimAhead},
		}},
		{"a slow claim sends the next ones earlier", []step{
			{0, 200 * time.Millisecond, 200*time.Millisecond + claimAheadMargin},
			{time.Second, 20 * time.Millisecond, 200*time.Millisecond + claimAheadMargin},
		}},
		{"bounded", []step{
			{0, 3 * time.Second, maxClaimAhead},
		}},
		{"kept one to two windows, then back", []step{
			{0, 300 * time.Millisecond, 300*time.Millisecond + claimAheadMargin},
			{claimLeadWindow, 0, 300*time.Millisecond + claimAheadMargin},
			{claimLeadWindow - time.Millisecond, 0, 300*time.Millisecond + claimAheadMargin},
			{time.Millisecond, 0, claimAhead},
		}},
		{"a herd every minute keeps its lead", []step{
			{0, 400 * time.Millisecond, 400*time.Millisecond + claimAheadMargin},
			{time.Minute - 500*time.Millisecond, 0, 400*time.Millisecond + claimAheadMargin},
			{time.Second, 450 * time.Millisecond, maxClaimAhead},
			{time.Minute - time.Second, 0, maxClaimAhead},
		}},
		{"a later window's slower claim wins", []step{
			{0, 100 * time.Millisecond, 100*time.Millisecond + claimAheadMargin},
			{claimLeadWindow, 250 * time.Millisecond, 250*time.Millisecond + claimAheadMargin},
			{claimLeadWindow, 10 * time.Millisecond, 250*time.Millisecond + claimAheadMargin},
			{claimLeadWindow, 0, claimAhead},
		}},
		{"clock stepped back", []step{
			{0, 300 * time.Millisecond, 300*time.Millisecond + claimAheadMargin},
			{-time.Hour, 0, 300*time.Millisecond + claimAheadMargin},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
			c := newClaimLead(clk)
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				if st.took > 0 {
					c.observe(st.took)
				}
				if got := c.ahead(); got != st.want {
					t.Errorf("step %d: ahead got %v, want %v", i, got, st.want)
				}
			}
		})
	}
}

// TestClaimLeadBusyRedis keeps Redis busy (a script that spins) from
// just before each slot's claims go out, claimAhead before the slot, until
// busyFor later, as another replica's burst of claims would: the claims
// are answered late, and their runs start that late. The claim-ahead must
// follow, so that the later slots' claims are through before Redis gets
// busy and their runs start on time, never early, each slot once. The
// first spin starts before the replica's claim-ahead of that moment,
// which a loaded machine may already have raised above claimAhead; busyFor
// is 200 ms past it.
func TestClaimLeadBusyRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	busy := srv.Client(t)
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	var js []*jobs.Job
	for i := range 5 {
		js = append(js, testJob(t, fmt.Sprintf("busyredis%d", i), "* * * * * *", fn, nil))
	}
	in := startInstance(t, srv, js, Options{Replica: "busy", ClockCheck: time.Hour})
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) > 0 })
	first := slotAhead(maxClaimAhead + 200*time.Millisecond)
	ahead0 := first.Sub(claimsOut(in.s, first))
	busyFor := ahead0 + 200*time.Millisecond
	const slots = 6
	spin := fmt.Sprintf(`local function us() local t = redis.call("TIME") return t[1] * 1000000 + t[2] end
local s = us() while us() - s < %d do end return 1`, busyFor.Microseconds())
	for i := range slots {
		slot := first.Add(time.Duration(i) * time.Second)
		start := slot.Add(-claimAhead - 10*time.Millisecond)
		if i == 0 {
			start = slot.Add(-ahead0 - 10*time.Millisecond)
		}
		waitUntil(start)
		if err := busy.Eval(context.Background(), spin, nil).Err(); err != nil {
			t.Fatalf("spin: %v", err)
		}
	}
	waitUntil(first.Add(slots*time.Second + 500*time.Millisecond))
	if got, want := in.s.ahead.ahead(), busyFor-claimAhead+claimAheadMargin; got < want {
		t.Errorf("claim-ahead: got %v, want at least %v", got, want)
	}
	perSlot := map[string]int{}
	runs, onTime, late := 0, 0, 0
	for _, e := range l.snapshot() {
		if e.slot.Before(first) || !e.slot.Before(first.Add(slots*time.Second)) {
			continue
		}
		runs++
		perSlot[e.job+" "+e.slot.Format(time.TimeOnly)]++
		switch lag := e.start.Sub(e.slot); {
		case lag < 0:
			t.Errorf("job %s slot %v started %v early", e.job, e.slot.Format(time.TimeOnly), -lag)
		case lag < busyFor/3:
			onTime++
		case lag >= busyFor-ahead0-10*time.Millisecond:
			late++ // claimed while Redis was busy
		}
	}
	for k, n := range perSlot {
		if n != 1 {
			t.Errorf("%s: got %d runs, want 1", k, n)
		}
	}
	if runs != 5*slots {
		t.Errorf("runs of the %d slots from %v: got %d, want %d", slots, first.Format(time.TimeOnly), runs, 5*slots)
	}
	// The first busy slot's runs start late; once the claim-ahead has
	// followed, the runs start at their slots.
	if late == 0 {
		t.Errorf("runs that started %v or more after their slot: got 0, want the first busy slot's (else Redis was never busy at the claims)", busyFor-ahead0-10*time.Millisecond)
	}
	if onTime < runs/2 {
		t.Errorf("runs started within %v of their slot: got %d of %d, want at least half", busyFor/3, onTime, runs)
	}
}

// TestClaimLeadTimedOut holds Redis's replies to a replica longer than
// its read timeout (500 ms) for a slot's claims: their first attempts time
// out unanswered. Such a claim took at least the timeout, so the
// claim-ahead must rise to its bound, maxClaimAhead, not stay at its
// floor as if nothing had been measured; every slot still runs once.
func TestClaimLeadTimedOut(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	p := redistest.StartProxyFor(t, srv)
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	var js []*jobs.Job
	for i := range 3 {
		js = append(js, testJob(t, fmt.Sprintf("timedout%d", i), "* * * * * *", fn, nil))
	}
	in := startInstanceAt(t, p.Addr(), js, Options{Replica: "timedout", ClockCheck: time.Hour})
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) > 0 })
	from := time.Now()
	if got := in.s.ahead.ahead(); got >= maxClaimAhead {
		t.Fatalf("claim-ahead before the held replies: got %v, want under %v (else the test shows nothing)", got, maxClaimAhead)
	}
	// Hold over one slot's claims (they go out at most maxClaimAhead
	// before it) and then some.
	slot := slotAhead(maxClaimAhead + 100*time.Millisecond)
	waitUntil(slot.Add(-maxClaimAhead - 50*time.Millisecond))
	p.Delay(redistest.ToClient, 900*time.Millisecond)
	waitUntil(slot.Add(700 * time.Millisecond))
	p.Delay(redistest.ToClient, 0)
	waitUntil(slot.Add(2500 * time.Millisecond))
	if got, want := in.s.ahead.ahead(), maxClaimAhead; got != want {
		t.Errorf("claim-ahead after claims timed out at the read timeout: got %v, want %v", got, want)
	}
	checkOnce(t, l.snapshot(), from)
}
