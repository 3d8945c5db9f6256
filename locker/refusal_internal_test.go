package locker

import (
	"errors"
	"testing"
)

// TestQuorumRefusal decides failed quorum claims of 3 nodes from their
// replies: which refusal is reported, whether it decides the slot, and
// whether it says that the slot's record stands on a minority.
func TestQuorumRefusal(t *testing.T) {
	won := obtainReply{code: replyWon}
	busy := obtainReply{code: replyBusy}
	paused := obtainReply{code: replyPaused}
	early := obtainReply{code: replyEarly, num: 200}
	unborn := obtainReply{code: replyUnborn}
	passed := obtainReply{code: replyClaimed}                         // the high-water above the slot, no mark
	skipped := obtainReply{code: replyClaimed, record: "skip:paused"} // a skip on record
	other := obtainReply{code: replyClaimed, token: "other"}          // another claim's running mark
	for _, tc := range []struct {
		name     string
		replies  []obtainReply // nil: the node's call failed
		decided  bool
		reason   error
		minority bool
	}{
		{name: "busy heard first, then early", replies: []obtainReply{won, busy, early}, decided: true, reason: ErrNotObtained, minority: true},
		{name: "early heard first, then busy", replies: []obtainReply{won, early, busy}, decided: true, reason: ErrEarly},
		{name: "busy and early, one node silent", replies: []obtainReply{busy, early, {}}, decided: true, reason: ErrNotObtained, minority: true},
		{name: "busy on two", replies: []obtainReply{busy, early, busy}, decided: true, reason: ErrNotObtained},
		{name: "paused and busy", replies: []obtainReply{paused, won, busy}, decided: true, reason: ErrPaused},
		{name: "a skip found, passed over on two", replies: []obtainReply{passed, skipped, passed}, decided: true, reason: ErrSlotClaimed, minority: true},
		{name: "passed over on all", replies: []obtainReply{passed, passed, passed}, decided: true, reason: ErrSlotClaimed},
		{name: "busy, unborn on two", replies: []obtainReply{busy, unborn, unborn}, decided: true, reason: ErrUnborn},
		{name: "busy alone", replies: []obtainReply{busy, won, won}, decided: false},
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
			best, decided := quorumRefusal(rs, 3, 2)
			if decided != tc.decided {
				t.Fatalf("decided: got %v, want %v", decided, tc.decided)
			}
			if !decided {
				return
			}
			if !errors.Is(best, tc.reason) {
				t.Errorf("refusal: got %v, want %v", best, tc.reason)
			}
			if best.Minority != tc.minority {
				t.Errorf("Minority: got %v, want %v", best.Minority, tc.minority)
			}
		})
	}
}
