package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redcron/redcron/internal/jsonstr"
)

// Outcomes of a run, the "outcome" of its Record (and label of
// redcron_runs_total).
const (
	OutcomeOK        = "ok"
	OutcomeError     = "error"
	OutcomeTimeout   = "timeout"
	OutcomePanic     = "panic"
	OutcomeLeaseLost = "lease_lost"
	OutcomeShutdown  = "shutdown"
	OutcomeCanceled  = "canceled"
	// OutcomeSkipped is the outcome of a slot that did not run; Reason says why.
	OutcomeSkipped = "skipped"
	// OutcomeRunning is the state of a run that has not ended: the record
	// of its mark until Finish replaces it.
	OutcomeRunning = "running"
)

// Reasons: why a slot was skipped (Record.Reason with OutcomeSkipped), or,
// with OutcomeLeaseLost, how the lease was lost.
const (
	ReasonPaused   = "paused"   // the job was paused
	ReasonOverlap  = "overlap"  // overlap forbid: the job was still running; replace: a later claim replaced the same run before this one started
	ReasonOutage   = "outage"   // no claim could be made (Redis unreachable) within the window
	ReasonLate     = "late"     // the slot was found after its catch-up window, or its claim waited in the replica's own queue until the next slot (overload)
	ReasonAborted  = "aborted"  // a claim that may have won was given up
	ReasonClock    = "clock"    // the replicas that saw it had clocks off by more than max_clock_skew
	ReasonSplit    = "split"    // quorum mode: the claimants' votes kept splitting until the next slot (later attempts, if any, cut short unanswered)
	ReasonReplaced = "replaced" // lease_lost: a later slot replaced the run (overlap replace)
)

// Record is the one final record of a (job, slot), the same in the slot's
// mark, in the job's history, in the API and on the page (DESIGN "The slot
// ledger"). While the run lasts, its mark holds a Record with
// OutcomeRunning.
type Record struct {
	Job        string    `json:"job"`
	Slot       time.Time `json:"slot"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	Replica    string    `json:"replica,omitempty"`
	Fence      int64     `json:"fence,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	DurationMS int64     `json:"duration_ms,omitempty"`
	Manual     bool      `json:"manual,omitempty"`
	Error      string    `json:"error,omitempty"`
	Output     string    `json:"output,omitempty"`
}

// MaxErrorLen caps a record's error text, in bytes.
const MaxErrorLen = 2 << 10

// Encode renders r as the JSON stored in Redis: slot in UTC seconds,
// started in UTC milliseconds, the error capped at MaxErrorLen bytes (its
// start kept, "…" marking the cut). The bytes are those of encoding/json
// (a test holds them equal), written by hand: a replica encodes several
// records for each of thousands of claims a second.
func (r Record) Encode() string {
	if len(r.Error) > MaxErrorLen {
		r.Error = strings.ToValidUTF8(r.Error[:MaxErrorLen], "") + "…"
	}
	// Built in a buffer on the stack when it fits (a replica encodes
	// records for thousands of firings a second), then copied once.
	var buf [512]byte
	b := buf[:0]
	if n := 160 + len(r.Job) + len(r.Replica) + len(r.Error) + len(r.Output); n > len(buf) {
		b = make([]byte, 0, n)
	}
	b = append(b, `{"job":`...)
	b = jsonstr.Append(b, r.Job)
	b = append(b, `,"slot":"`...)
	b = r.Slot.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","outcome":`...)
	b = jsonstr.Append(b, r.Outcome)
	if r.Reason != "" {
		b = append(b, `,"reason":`...)
		b = jsonstr.Append(b, r.Reason)
	}
	if r.Replica != "" {
		b = append(b, `,"replica":`...)
		b = jsonstr.Append(b, r.Replica)
	}
	if r.Fence != 0 {
		b = append(b, `,"fence":`...)
		b = strconv.AppendInt(b, r.Fence, 10)
	}
	if r.Attempts != 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(r.Attempts), 10)
	}
	if !r.Started.IsZero() {
		b = append(b, `,"started":"`...)
		b = r.Started.UTC().Truncate(time.Millisecond).AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if r.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, r.DurationMS, 10)
	}
	if r.Manual {
		b = append(b, `,"manual":true`...)
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = jsonstr.Append(b, r.Error)
	}
	if r.Output != "" {
		b = append(b, `,"output":`...)
		b = jsonstr.Append(b, r.Output)
	}
	b = append(b, '}')
	return string(b)
}

// ParseRecord decodes a stored record.
func ParseRecord(s string) (Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Record{}, fmt.Errorf("store: record %q: %w", s, err)
	}
	return r, nil
}

// Skip is the record of a slot skipped for reason, nobody's run.
func Skip(job string, slot time.Time, reason string) string {
	return Record{Job: job, Slot: slot, Outcome: OutcomeSkipped, Reason: reason}.Encode()
}

// Mark is a slot's mark as stored: the claim that took it, if any, and its
// record (running, or final once the run ended or the slot was skipped).
type Mark struct {
	Token string // the claim's token; empty for a skip nobody claimed
	Fence int64
	// Claim is the running record the claim wrote (Outcome OutcomeRunning,
	// Fence filled in): who claimed the slot and when. Zero for a skip
	// nobody claimed.
	Claim Record
	// Record is the final record once the slot is decided, else Claim.
	Record Record
	// Ended says whether Record is final.
	Ended bool
}

// ParseMark decodes a mark read with HGETALL; ok is false when the mark
// does not exist (an empty hash).
func ParseMark(h map[string]string) (m Mark, ok bool, err error) {
	if len(h) == 0 {
		return Mark{}, false, nil
	}
	m.Token = h["token"]
	if f := h["fence"]; f != "" {
		if m.Fence, err = strconv.ParseInt(f, 10, 64); err != nil {
			return Mark{}, true, fmt.Errorf("store: mark fence %q: %w", f, err)
		}
	}
	if run := h["run"]; run != "" {
		if m.Claim, err = ParseRecord(run); err != nil {
			return m, true, err
		}
		if m.Claim.Fence == 0 {
			m.Claim.Fence = m.Fence
		}
	}
	end := h["end"]
	m.Ended = end != ""
	switch {
	case m.Ended:
		m.Record, err = ParseRecord(end)
	case h["run"] != "":
		m.Record = m.Claim
	default:
		err = fmt.Errorf("store: mark without a record: %v", h)
	}
	return m, true, err
}
