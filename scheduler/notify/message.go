package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redcron/redcron/scheduler/store"
)

// MaxOutput is how much of a record's output (its tail) a notification
// carries; the full tail stays in the job's history.
const MaxOutput = 1 << 10

// maxTextError is how much of the record's error the text line shows.
const maxTextError = 200

// KindOf says which notification a final record makes, given the outcome
// of the job's previous final record ("" when there is none): KindSkipped
// for a skip, KindFailure for a run that did not end ok, KindRecovery for
// an ok run after a failure, and "" for none (an ok run after an ok run or
// a skip, or a record that is not final).
func KindOf(rec store.Record, prevOutcome string) string {
	switch {
	case rec.Outcome == store.OutcomeSkipped:
		return KindSkipped
	case rec.Outcome == store.OutcomeOK:
		if failed(prevOutcome) {
			return KindRecovery
		}
		return ""
	case failed(rec.Outcome):
		return KindFailure
	}
	return ""
}

// failed reports whether outcome is the end of a run that did not go well.
func failed(outcome string) bool {
	switch outcome {
	case "", store.OutcomeOK, store.OutcomeSkipped, store.OutcomeRunning:
		return false
	}
	return true
}

// body is what a webhook receives. Slack and the receivers compatible with
// it show text; others can read event and record.
type body struct {
	Text   string          `json:"text"`
	Event  string          `json:"event"`
	Record json.RawMessage `json:"record"`
}

// Body renders ev as the JSON posted to webhooks:
// {"text": "...", "event": "failure", "record": {...}}, the record as the
// slot ledger stores it.
func Body(ev Event) ([]byte, error) {
	return json.Marshal(body{Text: Text(ev), Event: ev.Kind, Record: json.RawMessage(ev.Record.Encode())})
}

// Text is the one-line human message of ev, for example
//
//	redcron: job backup failed (timeout) at 2026-11-30T03:00:00Z on replica r1, fence 42: context deadline exceeded
//
// with the record's error cut to its first 200 characters. &, < and > are
// escaped as Slack asks (&amp; &lt; &gt;).
func Text(ev Event) string {
	r := ev.Record
	var b strings.Builder
	b.WriteString("redcron: job " + r.Job + " ")
	switch ev.Kind {
	case KindFailure:
		b.WriteString("failed (" + r.Outcome)
		if r.Reason != "" {
			b.WriteString(": " + r.Reason)
		}
		b.WriteString(")")
	case KindRecovery:
		b.WriteString("recovered (" + r.Outcome + ")")
	case KindSkipped:
		b.WriteString("skipped (" + r.Reason + ")")
	default:
		fmt.Fprintf(&b, "%s (%s)", ev.Kind, r.Outcome)
	}
	b.WriteString(" at " + r.Slot.UTC().Format(time.RFC3339))
	if r.Manual {
		b.WriteString(" (manual trigger)")
	}
	if r.Replica != "" {
		b.WriteString(" on replica " + r.Replica)
	}
	if r.Fence != 0 {
		fmt.Fprintf(&b, ", fence %d", r.Fence)
	}
	if r.Attempts > 1 {
		fmt.Fprintf(&b, ", after %d attempts", r.Attempts)
	}
	if e := oneLine(r.Error); e != "" && ev.Kind != KindRecovery {
		b.WriteString(": " + cut(e, maxTextError))
	}
	return slackEscape.Replace(b.String())
}

var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// oneLine folds s's whitespace runs (line breaks included) into spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cut keeps s's first n characters, "…" marking a cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, k := 0, 0
	for i = range s {
		if k == n {
			break
		}
		k++
	}
	return s[:i] + "…"
}

// trimRecord bounds what a queued event holds: the error as the ledger
// caps it, the output to its last MaxOutput bytes.
func trimRecord(r store.Record) store.Record {
	if len(r.Error) > store.MaxErrorLen {
		r.Error = strings.ToValidUTF8(r.Error[:store.MaxErrorLen], "") + "…"
	}
	if len(r.Output) > MaxOutput {
		r.Output = "…" + strings.ToValidUTF8(r.Output[len(r.Output)-MaxOutput:], "")
	}
	return r
}
