package locker

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// RingSpan is how far below a job's high-water slot its ring of decided
// slots (Claim.RingKey) speaks: one bit a second, so a ring is RingSpan/8
// bytes at most. prelude.lua's RING is the same span.
const RingSpan = 4096 * time.Second

// Skip says what RecordSkip writes: the final record of a slot that nobody
// claimed, once no replica may claim it any more.
type Skip struct {
	MarkKey, MetaKey string
	Slot             time.Time
	// FirstSeen is stored as the job's first sight when it has none yet
	// (see Claim.FirstSeen); a slot before the job's first sight is never
	// recorded (ErrUnborn).
	FirstSeen time.Time
	Record    string
	Retention time.Duration
	// NotBefore and NotAfter (server clock) bound when an absent mark
	// proves that nobody claimed the slot: from the instant no replica may
	// still claim it, until the instant a run's mark could have expired.
	// After NotAfter the record is still written while the job's
	// high-water slot, which never expires, is below Slot, or while the
	// job's ring (RingKey) speaks for Slot and shows it undecided: up to
	// RingSpan below the high-water, while every claim and skip of the job
	// since the ring was started carried it (one without it under the
	// high-water stops the ring; one above it, an older replica's,
	// restarts it). In quorum mode each node proves this for itself, and
	// the record is written once a majority do (see RecordSkips). A record
	// of Slot in the history (HistoryKey) refuses the skip past NotAfter.
	NotBefore, NotAfter time.Time
	// RingKey is the job's ring of decided slots, as in Claim; optional.
	RingKey string
	// HistoryKey, HistoryLen and HistoryTTL as in Claim.
	HistoryKey string
	HistoryLen int
	HistoryTTL time.Duration
}

// RecordSkip writes s.Record to the slot's mark (and history) if the mark
// is absent, from NotBefore on the server's clock until NotAfter or, after
// it, while the job's high-water slot is below s.Slot or its ring shows
// s.Slot undecided (on a majority of the nodes in quorum mode), and raises
// the high-water to s.Slot, in one script call per node (two in quorum
// mode, see RecordSkips). It returns nil once recorded; a NotObtainedError
// wrapping ErrEarly (with Wait) before NotBefore, ErrSlotClaimed when the
// slot has a claim or a record (or the ring shows it decided; in quorum
// mode, on enough nodes for a claim to have won), ErrLate
// after NotAfter with the high-water at or above s.Slot and no ring that
// speaks for it (too late to tell whether it ran; see Decided, set on a
// single node only), ErrUnborn before the job's first sight; or the I/O
// error (ErrNoQuorum in quorum mode when fewer than a majority answered,
// or while a claim of the slot may have won, or a majority may prove that
// none did, on the nodes that did not answer).
func (l *Locker) RecordSkip(ctx context.Context, s Skip) error {
	return l.RecordSkips(ctx, []Skip{s})[0]
}

// RecordSkips is RecordSkip for each of ss, sent at once (pipelined with
// the other calls queued on each node, without a goroutine per skip; in
// quorum mode behind the claims and finishes queued there, see
// prioRecord); the errors are in the order of ss. In quorum mode each
// skip is written only after a first round that writes nothing finds that
// no claim of its slot won (see probed): a node that missed a granted
// claim has no mark, and would otherwise take a skip beside the run.
func (l *Locker) RecordSkips(ctx context.Context, ss []Skip) []error {
	errs := make([]error, len(ss))
	todo := make([]int, 0, len(ss)) // indexes of ss to write
	pr := prioNormal
	if len(l.nodes) > 1 {
		pr = prioRecord
		gs := make([]*gather[obtainReply], len(ss))
		for i, s := range ss {
			gs[i] = fanoutTo(ctx, l.nodes, nil, laneMain, pr, l.opts.NodeTimeout, recordScript, l.skipLine(s, true), parseObtainCmd)
		}
		for i, g := range gs {
			var write bool
			if write, errs[i] = l.probed(ctx, g.all()); write {
				todo = append(todo, i)
			}
		}
	} else {
		for i := range ss {
			todo = append(todo, i)
		}
	}
	gs := make([]*gather[obtainReply], len(todo))
	for j, i := range todo {
		gs[j] = fanoutTo(ctx, l.nodes, nil, laneMain, pr, l.opts.NodeTimeout, recordScript, l.skipLine(ss[i], false), parseObtainCmd)
	}
	for j, i := range todo {
		errs[i] = l.recorded(ctx, gs[j].all())
	}
	return errs
}

// skipLine is record.lua's command line for s; probe asks what the call
// would do, writing nothing but the job's first sight.
func (l *Locker) skipLine(s Skip, probe bool) []any {
	a := recordScript.args()
	a.key("mark", s.MarkKey).key("meta", s.MetaKey).key("history", s.HistoryKey).key("ring", s.RingKey)
	a.arg("slot", strconv.FormatInt(s.Slot.Unix(), 10)).arg("first", strconv.FormatInt(firstSeen(s.FirstSeen, s.Slot), 10))
	a.arg("record", s.Record).arg("retention", ms(s.Retention))
	a.arg("not_before", unixMS(s.NotBefore)).arg("not_after", unixMS(s.NotAfter))
	if s.HistoryKey != "" {
		a.arg("history_len", strconv.Itoa(s.HistoryLen)).arg("history_ttl", ms(s.HistoryTTL)).arg("history_score", unixMS(s.Slot))
	}
	a.arg("hw_proof", "1") // each node's own proof: in quorum mode see probed
	if len(l.nodes) > 1 {
		a.arg("quorum", "1")
	}
	if probe {
		a.arg("probe", "1")
	}
	return a.line()
}

// probed is quorum mode's verdict on the first round of a skip: write
// when no claim of the slot can have won and some node would write it. A
// claim that won holds a mark on a majority of the nodes; one that lost
// its vote may keep a mark on fewer (its drop not delivered, or its
// withdrawal ended it there). So a claim's marks on a majority of all the
// nodes (counted among those that answered), or a final record in the
// mark of a claim that the nodes which did not answer could lift to a
// majority (a run that ended, or a claim withdrawn after it may have
// won), give ErrSlotClaimed; a running claim that they could lift to a
// majority gives ErrNoQuorum (not yet known). A claim that they cannot,
// running or ended, lost: its marks are no objection, nor is a skip
// already recorded on some nodes, without a claim: the write completes it
// on the others. With
// too few answers, before the slot is due, or with no node that would
// write, the verdict is recorded's on these replies, as a write round's
// would be.
//
// Past the mark's window a node's answer rests on its own high-water and
// ring (record.lua's A.hw_proof), which cannot tell a granted claim from
// a skip once the marks are gone: the skip is written only when a
// majority of the nodes prove that they granted no claim of the slot (an
// absent mark, or a skip in it), so that no majority can have granted
// one. While the nodes that did not answer could still make that
// majority it gives ErrNoQuorum; when they cannot, the slot is claimed if
// a majority show it decided, and late (too late to tell) otherwise.
func (l *Locker) probed(ctx context.Context, rs []nodeResult[obtainReply]) (write bool, err error) {
	answered, absent, early := 0, 0, false
	skips, decided := 0, 0            // marks that hold a skip; nodes that show the slot decided
	past := false                     // some node answered on the proof past the mark's window
	claims := map[string]int{}        // claims' marks per token
	ended := map[string]obtainReply{} // a final record in a claim's mark, per token
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		answered++
		switch r.val.code {
		case replyAbsent:
			absent++
			past = past || r.val.num == 1
		case replyEarly:
			early = true
		case replyLate:
			past = true
		case replyClaimed:
			decided++
			if r.val.token == "" {
				if r.val.record == "" {
					past = true // the ring or the history: a claim or a skip
				} else {
					skips++ // a skip, recorded without a claim
				}
				continue
			}
			claims[r.val.token]++
			if r.val.record != "" {
				ended[r.val.token] = r.val
			}
		}
	}
	if answered < l.quorum || early {
		return false, l.recorded(ctx, rs)
	}
	for tok, n := range claims {
		e, isEnded := ended[tok]
		switch {
		case n >= l.quorum:
			return false, fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrSlotClaimed})
		case n+len(l.nodes)-answered < l.quorum:
			// Too few hold it for a win, ended (a withdrawal) or not: within
			// the window a node that granted it still holds its mark, and
			// past it the rule below asks a majority for proof.
		case isEnded:
			// A final record of a claim that may have won: on record.
			return false, fmt.Errorf("locker: record skip: %w", e.err())
		default:
			return false, fmt.Errorf("locker: record skip: %w: a claim of the slot holds %d of the %d nodes that answered, and may have won on the %d that did not: %w",
				ErrNoQuorum, n, answered, len(l.nodes)-answered, withCtx(ctx, joinErrs(rs)))
		}
	}
	if past && absent+skips < l.quorum {
		switch {
		case absent+skips+len(l.nodes)-answered >= l.quorum:
			return false, fmt.Errorf("locker: record skip: %w: %d of the %d nodes that answered prove that they granted no claim of the slot, and the %d that did not may make a majority: %w",
				ErrNoQuorum, absent+skips, answered, len(l.nodes)-answered, withCtx(ctx, joinErrs(rs)))
		case decided >= l.quorum:
			return false, fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrSlotClaimed})
		}
		return false, fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrLate})
	}
	if absent == 0 {
		return false, l.recorded(ctx, rs)
	}
	return true, nil
}

// recorded is RecordSkip's verdict on the nodes' replies.
func (l *Locker) recorded(ctx context.Context, rs []nodeResult[obtainReply]) error {
	counts := map[string]int{}
	var best obtainReply
	answered := 0
	var decided int64 // the high-water in a late reply (a single node's)
	held := 0         // nodes where the slot is on record: the skip written, or a final record in its mark
	for _, r := range rs {
		if r.err != nil {
			continue
		}
		answered++
		counts[r.val.code]++
		if r.val.code == replyRecorded || (r.val.code == replyClaimed && r.val.record != "") {
			held++
		}
		if r.val.code == replyEarly && r.val.num > best.num {
			best = r.val
		}
		if r.val.code == replyLate && len(l.nodes) == 1 {
			// a node's own ring: in quorum mode the others may still speak
			decided = r.val.num
		}
	}
	switch {
	case answered < l.quorum:
		if len(l.nodes) == 1 {
			return fmt.Errorf("locker: record skip: %w", withCtx(ctx, joinErrs(rs)))
		}
		return fmt.Errorf("locker: record skip: %w: %d of %d nodes answered: %w", ErrNoQuorum, answered, len(l.nodes), withCtx(ctx, joinErrs(rs)))
	case held >= l.quorum && counts[replyRecorded] > 0:
		return nil
	case counts[replyRecorded] > 0 && held+len(l.nodes)-answered >= l.quorum:
		// Written on too few nodes yet (the others did not answer): a
		// retry completes it.
		return fmt.Errorf("locker: record skip: %w: on record on %d of %d nodes: %w", ErrNoQuorum, held, len(l.nodes), withCtx(ctx, joinErrs(rs)))
	case counts[replyEarly] > 0:
		return fmt.Errorf("locker: record skip: %w", best.err())
	case counts[replyClaimed] > 0:
		return fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrSlotClaimed})
	case counts[replyUnborn] > 0:
		return fmt.Errorf("locker: record skip: %w", &NotObtainedError{Reason: ErrUnborn})
	}
	e := &NotObtainedError{Reason: ErrLate}
	if decided > 0 {
		e.Decided = time.Unix(decided, 0).UTC()
	}
	return fmt.Errorf("locker: record skip: %w", e)
}
