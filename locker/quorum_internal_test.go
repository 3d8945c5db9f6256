package locker

import (
	"errors"
	"testing"
	"time"
)

// TestQuorumRefusal decides failed quorum claims of 3 nodes from their
// replies: which refusal is reported, whether it decides the slot, and
// whether it says that the slot's record stands on a minority.
func TestQuorumRefusal(t *testing.T) {
	won := obtainReply{code: replyWon}
	busy := obtainReply{code: replyBusy}
	paused := obtainReply{code: replyPaused}
	late := obtainReply{code: replyLate}
	early := obtainReply{code: replyEarly, num: 200}
	unborn := obtainReply{code: replyUnborn}
	passed := obtainReply{code: replyClaimed}                         // the high-water above the slot, no mark
	skipped := obtainReply{code: replyClaimed, record: "skip:paused"} // a skip on record
	other := obtainReply{code: replyClaimed, token: "other"}          // another claim's running mark
	for _, tc := range []struct {
		name     string
		replies  []obtainReply // code "": the node's call failed
		plain    bool          // a claim without a mark or records (a plain lock)
		decided  bool
		reason   error
		record   string        // the record reported, if any
		wait     time.Duration // the wait reported, if checked
		minority bool
	}{
		{name: "busy heard first, then early", replies: []obtainReply{won, busy, early}, decided: true, reason: ErrEarly},
		{name: "early heard first, then busy", replies: []obtainReply{won, early, busy}, decided: true, reason: ErrEarly},
		{name: "busy and early, one node silent", replies: []obtainReply{busy, early, {}}, decided: true, reason: ErrEarly},
		{name: "late and early", replies: []obtainReply{late, won, early}, decided: true, reason: ErrEarly},
		{name: "busy on two, early on one", replies: []obtainReply{busy, early, busy}, decided: true, reason: ErrNotObtained},
		{name: "busy and unborn", replies: []obtainReply{won, unborn, busy}, decided: true, reason: ErrNotObtained, minority: true},
		{name: "busy, unborn on two", replies: []obtainReply{busy, unborn, unborn}, decided: true, reason: ErrUnborn},
		{name: "late and passed over", replies: []obtainReply{passed, late, won}, decided: true, reason: ErrLate, minority: true},
		{name: "paused and busy", replies: []obtainReply{paused, won, busy}, decided: true, reason: ErrPaused},
		{name: "a skip found, passed over on two", replies: []obtainReply{passed, skipped, passed}, decided: true, reason: ErrSlotClaimed, record: "skip:paused", minority: true},
		{name: "passed over on all", replies: []obtainReply{passed, passed, passed}, decided: true, reason: ErrSlotClaimed},
		{name: "busy without a record, and unborn", replies: []obtainReply{busy, unborn, won}, plain: true, decided: true, reason: ErrNotObtained},
		{name: "paused without a record, and busy", replies: []obtainReply{paused, won, busy}, plain: true, decided: true, reason: ErrPaused},
		{name: "its own skip found first, then busy", replies: []obtainReply{skipped, busy, won}, decided: true, reason: ErrNotObtained},
		{name: "a skip found on two, busy", replies: []obtainReply{skipped, busy, skipped}, decided: true, reason: ErrSlotClaimed, record: "skip:paused"},
		{name: "early waits, the longest first", replies: []obtainReply{early, {code: replyEarly, num: 900}, busy}, decided: true, reason: ErrEarly, wait: 900 * time.Millisecond},
		{name: "busy alone", replies: []obtainReply{busy, won, won}, decided: false},
		{name: "early and unborn", replies: []obtainReply{unborn, early, won}, decided: true, reason: ErrEarly},
		{name: "early, passed over on two", replies: []obtainReply{passed, passed, early}, decided: true, reason: ErrEarly},
		{name: "busy, another claim on two", replies: []obtainReply{busy, other, other}, decided: true, reason: ErrSlotClaimed},
		{name: "split", replies: []obtainReply{won, other, busy}, decided: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := make([]nodeResult[obtainReply], len(tc.replies))
			for i, r := range tc.replies {
				rs[i] = nodeResult[obtainReply]{node: i, val: r}
				if r.code == "" {
					rs[i].err = errors.New("i/o timeout")
				}
			}
			c := &Claim{MarkKey: "mark", Records: Records{Busy: "skip:overlap", Paused: "skip:paused", Late: "skip:late"}}
			if tc.plain {
				c = &Claim{}
			}
			best, decided := quorumRefusal(rs, 3, 2, c)
			if decided != tc.decided {
				t.Fatalf("decided: got %v, want %v", decided, tc.decided)
			}
			if !decided {
				return
			}
			if !errors.Is(best, tc.reason) {
				t.Errorf("refusal: got %v, want %v", best, tc.reason)
			}
			if best.Record != tc.record {
				t.Errorf("record: got %q, want %q", best.Record, tc.record)
			}
			if tc.wait != 0 && best.Wait != tc.wait {
				t.Errorf("wait: got %v, want %v", best.Wait, tc.wait)
			}
			if best.Minority != tc.minority {
				t.Errorf("Minority: got %v, want %v", best.Minority, tc.minority)
			}
		})
	}
}
