package scheduler

import (
	"sync"
	"time"
)

// claimAhead is the least time before its slot (plus jitter) that a
// firing sends its claim, so that the claims of an instant are through
// Redis when it comes; the run still starts at the slot. Until the slot is
// due on Redis's clock, a paused job or a busy lease makes the claim wait
// (locker's Claim.Due), so pause and overlap are decided at the slot; a
// pause set after a claim won, in its last claim-ahead, takes effect from
// the next slot. When claims take longer, claimLead sends them earlier.
const claimAhead = 100 * time.Millisecond

// maxClaimAhead bounds how early claims go out when Redis answers slowly:
// under half the shortest period a cron spec can have (1 s), so that a
// slot's claims never go out before the previous slot has come.
const maxClaimAhead = 500 * time.Millisecond

// claimAheadMargin is added to the slowest recent claim's time to reply.
const claimAheadMargin = 50 * time.Millisecond

// claimLeadWindow is how long a slow claim keeps the claim-ahead up: the
// claim-ahead follows the slowest reply of the last one to two windows. A
// minute, so that a herd due every minute or more often (everything at the
// top of the minute, or every 20 s) still finds the lead its last instant
// needed: with 10 s, a herd every 20 s found it gone at most instants, and
// its claims went out claimAhead before the slot.
const claimLeadWindow = time.Minute

// claimLead adapts how early a steady slot's claims go out to how long
// claims take to be answered: when thousands are due at one instant and
// Redis works through them for longer than claimAhead, the runs would
// start late by as much. It follows the slowest first attempt of the last
// one to two claimLeadWindows, plus claimAheadMargin, within [claimAhead,
// maxClaimAhead]. Safe for concurrent use: firings report, the loop reads.
type claimLead struct {
	clock Clock

	mu    sync.Mutex
	start time.Time     // start of the current window
	cur   time.Duration // slowest reply in the current window
	prev  time.Duration // slowest reply in the window before
}

func newClaimLead(clock Clock) *claimLead {
	return &claimLead{clock: clock, start: clock.Now()}
}

// rotate moves the windows on to now. Called with mu held.
func (c *claimLead) rotate(now time.Time) {
	switch since := now.Sub(c.start); {
	case since < 0:
		c.start = now // the clock stepped back: keep the windows
	case since >= 2*claimLeadWindow:
		c.prev, c.cur, c.start = 0, 0, now
	case since >= claimLeadWindow:
		c.prev, c.cur, c.start = c.cur, 0, c.start.Add(claimLeadWindow)
	}
}

// observe reports how long a claim took from being sent to its reply.
func (c *claimLead) observe(took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.clock.Now())
	c.cur = max(c.cur, took)
}

// ahead is how long before its slot a steady slot's claims go out now.
func (c *claimLead) ahead() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(c.clock.Now())
	return min(max(max(c.cur, c.prev)+claimAheadMargin, claimAhead), maxClaimAhead)
}
