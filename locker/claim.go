package locker

import (
	"fmt"
	"strconv"
	"time"
)

// Claim says what a claim takes, in one script call per node. Keys and
// records are the caller's: this package never builds or parses a record,
// and all keys of one Claim must share a {hash tag}.
type Claim struct {
	// Key is the lease key (a string holding the holder's token). Required.
	Key string
	// MetaKey is the job's hash, kept without TTL (one key per job, a fixed
	// bound): its "fence" counter is incremented by every successful claim;
	// a slot claim also keeps "hw", the highest slot decided, and "first",
	// the job's first sight. Required.
	MetaKey string
	// TTL is the lease length; the watchdog renews every TTL/3. Required,
	// at least 1ms (Redis expiries are in milliseconds).
	TTL time.Duration

	// MarkKey is an optional mark (a hash) that records the claim: its
	// token, fence and Running record while the run lasts, then the final
	// record. Obtain refuses with ErrSlotClaimed when it holds another
	// claim or a final record. Renewals keep a running mark for MarkTTL;
	// an ended mark (Finish, a skip, Withdraw) is kept for Retention.
	MarkKey   string
	MarkTTL   time.Duration
	Retention time.Duration
	// Running is the record stored in the mark while the run lasts.
	Running string
	// Records are written to the mark when the claim decides a skip.
	Records Records

	// Slot, when not zero, makes this a slot claim: it is refused with
	// ErrSlotClaimed when the job's high-water slot is at or above Slot
	// (so that a slot that was claimed is never claimed again, whatever
	// any mark's TTL), with ErrUnborn when Slot is before the job's first
	// sight, and it raises the high-water to Slot when it wins or records
	// a skip. It needs a MarkKey. Whole seconds.
	Slot time.Time
	// FirstSeen is stored as the job's first sight when it has none yet
	// (the instant this replica loaded the job), rounded up to the second.
	// Slot claims only; zero means Slot.
	FirstSeen time.Time
	// RingKey is the job's ring of decided slots (a string of at most
	// RingSpan/8 bytes, kept without TTL, with the same hash tag): a slot
	// claim that decides its slot marks it there, so that RecordSkip can
	// still tell, once the slot's mark may be gone, whether it was decided
	// (see Skip.RingKey). Slot claims only; optional, but the ring speaks
	// only while every claim and skip of the job carries it.
	RingKey string
	// NotBefore and NotAfter bound a slot claim on the server's clock
	// (Redis TIME, each node's own in quorum mode): earlier, it is refused
	// with ErrEarly and nothing is written; later, with ErrLate, and
	// Records.Late is recorded. Zero: no bound.
	NotBefore, NotAfter time.Time
	// Due is when the slot is due on the server's clock, for a claim sent
	// ahead of it (NotBefore before Due): until then, a paused job or a
	// busy lease fails the claim with ErrEarly (Wait: until Due) instead of
	// recording the slot's skip or replacing the run, so that those are
	// decided when the slot is due. Zero: NotBefore is the due time.
	Due time.Time
	// MarkFloor is how long after its slot every replica keeps a decided
	// slot's mark, at least (the shortest Retention of any config). Within
	// it, a slot claim that finds no mark but the job's high-water slot at
	// or above Slot (a later slot was decided first: claims reordered under
	// overload) records Records.Late and fails with ErrLate, so that the
	// slot passed over has its record. Later, on a single node, the same
	// when the job's ring (RingKey) shows the slot undecided and its
	// history (HistoryKey) holds no record of it. Zero, or neither:
	// ErrSlotClaimed, and nothing is written (its mark may have expired).
	MarkFloor time.Duration
	// PrevSlot is the job's slot before Slot, and PrevUntil until when,
	// on the server's clock, another replica may still claim it (stepping
	// in for one that stalled): until then, while PrevSlot is undecided
	// (the high-water below it, and the job's first sight at or before
	// it), the claim fails with ErrEarly (Wait: until PrevUntil) and
	// writes nothing, rather than pass the previous slot over. Zero
	// PrevUntil: no wait, and PrevSlot is unused. Otherwise the claim must
	// be a slot claim, PrevSlot whole seconds before Slot, and PrevUntil
	// at or before Due (NotBefore when Due is zero), or it is ErrInvalid.
	PrevSlot, PrevUntil time.Time

	// PauseKey, when set and present, makes Obtain fail with ErrPaused;
	// Records.Paused is recorded in the mark.
	PauseKey string
	// Replace takes over a lease held by another run (overlap "replace"):
	// the claim wins the slot at once, NextKey names this claim as the
	// successor, a message on Channel tells the holder to stop (its
	// renewals answer "replaced" too), and Obtain waits until the holder
	// released the lease, or its TTL ran out, before it returns. Needs
	// NextKey; Channel is optional (renewals are the fallback).
	Replace bool
	NextKey string
	Channel string

	// HistoryKey, HistoryLen and HistoryTTL: every final record written to
	// the mark is also added to HistoryKey, a sorted set scored by RecordAt
	// (default Slot; Unix ms), which keeps the newest HistoryLen records
	// younger than HistoryTTL (by score) and expires after HistoryTTL.
	// Empty HistoryKey: no history.
	HistoryKey string
	HistoryLen int
	HistoryTTL time.Duration
	RecordAt   time.Time
	// RunningKey, with MarkKey, is the job's index of running runs: a
	// sorted set of mark keys scored by lease expiry (server ms), kept by
	// the claim, renewals, Finish and Release, so that what runs now can be
	// listed. Optional.
	RunningKey string
	// StopTime is how long the run needs to stop once its context is
	// cancelled (a command's kill grace): a watched lease whose renewals
	// fail is given up, its Ctx cancelled with ErrLeaseLost, this long
	// before its local deadline, so that the run has stopped before the
	// lease can expire in Redis and another run start. At most TTL/3
	// (renewals are due every TTL/3); default 0.
	StopTime time.Duration
	// Unwatched leases have no watchdog: the caller renews with Lease.Renew
	// or lets the lease expire. Their context is not cancelled at the local
	// deadline; it ends when Renew finds the lease gone, or on Release or
	// Finish. Deadline tells the caller how long the lease is safe.
	Unwatched bool
}

// Records are the final records a claim writes to its mark when Redis
// decides a skip; opaque to this package. Empty: not recorded.
type Records struct {
	// Busy: the lease is held by another run (overlap forbid), or, with
	// Replace, a later claim replaced this one before it took the lease.
	// Without it, such a claim keeps its running mark until Withdraw (or
	// its MarkTTL).
	Busy   string
	Paused string // the pause key exists
	Late   string // past NotAfter on the server clock
	// Aborted ends the claim's running mark when the claim is given up
	// after it may have won (Bid.Withdraw, and Obtain after an I/O error).
	Aborted string
}

func (c *Claim) validate() error {
	switch {
	case c.Key == "":
		return fmt.Errorf("%w: claim without Key", ErrInvalid)
	case c.MetaKey == "":
		return fmt.Errorf("%w: claim %q without MetaKey", ErrInvalid, c.Key)
	case c.TTL < time.Millisecond:
		return fmt.Errorf("%w: claim %q: TTL %v < 1ms", ErrInvalid, c.Key, c.TTL)
	case c.MarkKey != "" && (c.MarkTTL < time.Millisecond || c.Retention < time.Millisecond):
		return fmt.Errorf("%w: claim %q: MarkKey needs MarkTTL and Retention", ErrInvalid, c.Key)
	case !c.Slot.IsZero() && (c.MarkKey == "" || c.Records.Late == "" || c.Slot.Nanosecond() != 0):
		return fmt.Errorf("%w: claim %q: a slot claim needs a MarkKey, Records.Late and a whole-second Slot", ErrInvalid, c.Key)
	case !c.Due.IsZero() && (c.Slot.IsZero() || c.Due.Before(c.NotBefore)):
		return fmt.Errorf("%w: claim %q: Due needs a slot claim, at or after NotBefore", ErrInvalid, c.Key)
	case !c.PrevUntil.IsZero() && (c.Slot.IsZero() || c.PrevSlot.IsZero() || !c.PrevSlot.Before(c.Slot) || c.PrevSlot.Nanosecond() != 0 || c.PrevUntil.After(c.due())):
		return fmt.Errorf("%w: claim %q: PrevUntil needs a slot claim, a whole-second PrevSlot before Slot, and to be at or before Due", ErrInvalid, c.Key)
	case c.Replace && c.NextKey == "":
		return fmt.Errorf("%w: claim %q: Replace needs NextKey", ErrInvalid, c.Key)
	case c.HistoryKey != "" && (c.HistoryLen <= 0 || c.HistoryTTL < time.Millisecond):
		return fmt.Errorf("%w: claim %q: HistoryKey needs HistoryLen and HistoryTTL", ErrInvalid, c.Key)
	}
	return nil
}

// due is when the slot claim is due on the server's clock: Due, or
// NotBefore when Due is zero.
func (c *Claim) due() time.Time {
	if c.Due.IsZero() {
		return c.NotBefore
	}
	return c.Due
}

// records says whether a refusal with reply code leaves this claim's own
// record in its mark (obtain.lua's end_mark): busy, paused or late, each
// when the claim has a mark and that record.
func (c *Claim) records(code string) bool {
	if c.MarkKey == "" {
		return false
	}
	switch code {
	case replyBusy:
		return c.Records.Busy != ""
	case replyPaused:
		return c.Records.Paused != ""
	case replyLate:
		return c.Records.Late != ""
	}
	return false
}

// stopTime is StopTime, at most TTL/3.
func (c *Claim) stopTime() time.Duration { return min(max(c.StopTime, 0), c.TTL/3) }

// markTTL is how long a running mark lives from a claim or renewal.
func (c *Claim) markTTL() time.Duration { return max(c.MarkTTL, c.TTL) }

// lines are a lease's script command lines, each built once: every
// attempt, renewal and take sends the same line. Most claims of a busy
// cluster lose, so the claim's line is built with the bid, the renewal's
// only at a lease's first renewal (most runs end before it) and the take's
// only when a lease waits for the run it replaces.
type lines struct {
	obtain, renew, take []any
}

// history adds the history arguments shared by the scripts that end marks.
func (c *Claim) history(a *args) *args {
	if c.HistoryKey == "" {
		return a
	}
	at := c.RecordAt
	if at.IsZero() {
		at = c.Slot
	}
	a.arg("history_len", strconv.Itoa(c.HistoryLen)).arg("history_ttl", ms(c.HistoryTTL))
	if !at.IsZero() {
		a.arg("history_score", unixMS(at))
	}
	return a
}

// keys adds the claim's keys that the scripts read by name.
func (c *Claim) keys(a *args) *args {
	a.key("lease", c.Key).key("meta", c.MetaKey).key("mark", c.MarkKey).key("history", c.HistoryKey).key("running", c.RunningKey)
	if c.Replace {
		a.key("next", c.NextKey)
	}
	return a
}

// lines are c's command lines under token; single: the locker has one
// node, where the ring proves a slot undecided (ring_proof).
func (c *Claim) lines(token string, single bool) lines {
	ttl := ms(c.TTL)
	o := obtainScript.args()
	c.keys(o).key("pause", c.PauseKey)
	if !c.Slot.IsZero() {
		o.key("ring", c.RingKey)
	}
	o.arg("token", token).arg("ttl", ttl)
	if c.MarkKey != "" {
		o.arg("mark_ttl", ms(c.markTTL())).arg("retention", ms(c.Retention)).arg("run", c.Running)
		o.argIf("skip_busy", c.Records.Busy).argIf("skip_paused", c.Records.Paused).argIf("skip_late", c.Records.Late)
	}
	if !c.Slot.IsZero() {
		o.arg("slot", strconv.FormatInt(c.Slot.Unix(), 10))
		o.arg("first", strconv.FormatInt(firstSeen(c.FirstSeen, c.Slot), 10))
		if !c.NotBefore.IsZero() {
			o.arg("not_before", unixMS(c.NotBefore))
		}
		if !c.NotAfter.IsZero() {
			o.arg("not_after", unixMS(c.NotAfter))
		}
		if !c.Due.IsZero() {
			o.arg("due", unixMS(c.Due))
		}
		if c.MarkFloor > 0 && c.Records.Late != "" {
			o.arg("mark_floor", ms(c.MarkFloor))
			if single {
				o.arg("ring_proof", "1")
			}
		}
		if !c.PrevUntil.IsZero() {
			o.arg("prev_slot", strconv.FormatInt(c.PrevSlot.Unix(), 10)).arg("prev_until", unixMS(c.PrevUntil))
		}
	}
	if c.Replace {
		o.arg("overlap", "replace").argIf("channel", c.Channel)
	}
	c.history(o)

	return lines{obtain: o.line()}
}

// renewLine is renew.lua's command line for token.
func (c *Claim) renewLine(token string) []any {
	r := renewScript.args()
	r.key("lease", c.Key).key("mark", c.MarkKey).key("running", c.RunningKey)
	if c.Replace {
		r.key("next", c.NextKey)
	}
	r.arg("token", token).arg("ttl", ms(c.TTL)).arg("mark_ttl", ms(c.markTTL()))
	return r.line()
}

// takeLine is take.lua's command line for token (overlap replace): each
// take that wins takes a new fence (see take.lua).
func (c *Claim) takeLine(token string) []any {
	t := takeScript.args()
	t.key("lease", c.Key).key("next", c.NextKey).key("mark", c.MarkKey).key("running", c.RunningKey).key("meta", c.MetaKey)
	t.arg("token", token).arg("ttl", ms(c.TTL)).arg("mark_ttl", ms(c.markTTL()))
	return t.line()
}

// Modes of release.lua for the claim's own running mark.
const (
	markKeep     = "keep"     // Release: a released slot stays claimed
	markWithdraw = "withdraw" // a claim given up after it may have won: recorded
	markDrop     = "drop"     // a quorum claim that lost the vote: deleted, high-water restored
)

// releaseLine is release.lua's command line for token, in mode, with the
// record of a withdrawal, and a lease's fence to raise the counter to (0:
// none, see leaseFence).
func (c *Claim) releaseLine(token, mode, record string, fence int64) []any {
	a := releaseScript.args()
	c.keys(a)
	if mode == markDrop && !c.Slot.IsZero() {
		a.key("ring", c.RingKey)
	}
	a.arg("token", token).arg("mode", mode)
	if fence > 0 {
		a.arg("fence", strconv.FormatInt(fence, 10))
	}
	if c.MarkKey != "" {
		a.arg("retention", ms(c.Retention))
		if mode == markWithdraw {
			a.arg("record", record)
		}
		if !c.Slot.IsZero() {
			a.arg("slot", strconv.FormatInt(c.Slot.Unix(), 10))
		}
	}
	c.history(a)
	return a.line()
}

// finishLine is finish.lua's command line, with the lease's fence to raise
// the counter to (0: none, see leaseFence).
func (c *Claim) finishLine(token, record string, fence int64) []any {
	a := finishScript.args()
	a.key("lease", c.Key).key("mark", c.MarkKey).key("history", c.HistoryKey).key("running", c.RunningKey)
	if fence > 0 {
		a.key("meta", c.MetaKey)
	}
	a.arg("token", token).arg("record", record).arg("retention", ms(c.Retention))
	if fence > 0 {
		a.arg("fence", strconv.FormatInt(fence, 10))
	}
	c.history(a)
	return a.line()
}

// firstSeen is the first sight stored for a job, in whole seconds: the
// first slot instant at or after t (slots are whole seconds, so a slot in
// the second t fell in, but before t, was due before the job was seen).
// Zero t means slot.
func firstSeen(t, slot time.Time) int64 {
	if t.IsZero() {
		return slot.Unix()
	}
	s := t.Unix()
	if t.After(time.Unix(s, 0)) {
		s++
	}
	return s
}
