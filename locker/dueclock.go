package locker

import (
	"sync"
	"time"
)

// dueClock turns a claim reply's wait until Claim.Due into the local
// instant by which Claim.Due has come on the node's clock (Lease.Due).
//
// A reply's own answer, its wait counted from when the reply was read, is
// late by as long as the reply queued after the script ran: behind a burst
// of claims, tens of milliseconds. So each node keeps its best recent sample
// of the server's clock against the local monotonic one: the server's
// clock read at least srv (ms, TIME floored by the scripts) by the local
// instant at, when that reply was read. The sample whose reply queued least gives the earliest
// instant that is still sure; the server's clock is allowed to run slower
// than the local one by dueMaxDrift, and a sample older than dueSampleAge
// is not used, which bounds what a step back of the server's clock could
// do. A step of the local wall clock changes nothing: only monotonic
// readings are compared.
type dueClock struct {
	mu  sync.Mutex
	at  time.Time // when the best sample's reply was read; zero: none yet
	srv int64     // the server's clock (ms) no later than at
}

const (
	// dueSampleAge is how long a sample of the server's clock is used.
	dueSampleAge = 2 * time.Second
	// dueMaxDrift bounds how much slower than the local monotonic clock
	// the server's may run: a span on the server's clock is waited for as
	// span*1000/999 on the local one, enough while the server's runs at
	// most 1/1000 slower (1,000 ppm, twice what NTP slews a clock).
	dueMaxDrift = 999
)

// local is when dueMS (Claim.Due, ms on the server's clock) comes on the
// node's clock, given a reply read at now that said wait ms remained; zero
// for wait <= 0 (due already). It is the earlier of the reply's own answer
// (now + wait) and the best sample's, and becomes the best sample when it is
// not beaten; see dueClock for why neither is early on the node's clock.
func (d *dueClock) local(now time.Time, dueMS, wait int64) time.Time {
	if wait <= 0 {
		return time.Time{}
	}
	own := now.Add(time.Duration(wait) * time.Millisecond)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() && now.Sub(d.at) <= dueSampleAge {
		span := time.Duration(dueMS-d.srv) * time.Millisecond
		if best := d.at.Add(span + span/dueMaxDrift); best.Before(own) {
			return best
		}
	}
	d.at, d.srv = now, dueMS-wait
	return own
}
