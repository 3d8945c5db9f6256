package locker

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts, each wrapped once with prelude.lua in front (named
// arguments, shared helpers). They are sent as EVALSHA (pipelined with
// other callers' commands when a node is busy, see node) and rerun as EVAL
// when the server answers NOSCRIPT (after a restart or SCRIPT FLUSH). Each
// script's header comment lists its keys, arguments and reply.
var (
	//go:embed prelude.lua
	preludeLua string

	//go:embed obtain.lua
	obtainLua string
	// obtainScript claims a lease, and a slot when the claim has one.
	obtainScript = newScript(obtainLua)

	//go:embed renew.lua
	renewLua string
	// renewScript extends a lease and its running mark.
	renewScript = newScript(renewLua)

	//go:embed release.lua
	releaseLua string
	// releaseScript deletes a lease, keeping, ending or dropping its mark.
	releaseScript = newScript(releaseLua)

	//go:embed finish.lua
	finishLua string
	// finishScript ends a run: the lease goes, the final record stays.
	finishScript = newScript(finishLua)

	//go:embed take.lua
	takeLua string
	// takeScript hands a replaced run's lease to its successor.
	takeScript = newScript(takeLua)

	//go:embed fence.lua
	fenceLua string
	// fenceScript raises a fence counter (quorum write-back).
	fenceScript = newScript(fenceLua)

	//go:embed record.lua
	recordLua string
	// recordScript records a skip for a slot nobody claimed.
	recordScript = newScript(recordLua)
)

// script is a Lua script wrapped once by redis.NewScript, with its SHA1
// boxed once for the command lines.
type script struct {
	src string
	sha any
}

func newScript(body string) *script {
	src := preludeLua + "\n" + body
	return &script{src: src, sha: redis.NewScript(src).Hash()}
}

// args builds a script's command line in the calling convention of
// prelude.lua: the names of the keys given, then name/value pairs. A key
// or argument that is not given is simply absent.
type args struct {
	names []byte
	keys  []any
	vals  []any
}

// key adds KEYS entry k under name; an empty k is not added.
func (a *args) key(name, k string) *args {
	if k == "" {
		return a
	}
	if len(a.names) > 0 {
		a.names = append(a.names, ',')
	}
	a.names = append(a.names, name...)
	a.keys = append(a.keys, k)
	return a
}

// arg adds the argument name = v (a string, or a number formatted once).
func (a *args) arg(name string, v any) *args {
	a.vals = append(a.vals, name, v)
	return a
}

// argIf adds the argument when v is not empty.
func (a *args) argIf(name, v string) *args {
	if v == "" {
		return a
	}
	return a.arg(name, v)
}

// line returns the command line "EVALSHA sha nkeys keys... names pairs...".
func (s *script) line(a *args) []any {
	out := make([]any, 0, 4+len(a.keys)+len(a.vals))
	out = append(out, "evalsha", s.sha, len(a.keys))
	out = append(out, a.keys...)
	out = append(out, string(a.names))
	return append(out, a.vals...)
}

// ms renders d in whole milliseconds (at least 1) for PX and PEXPIRE.
func ms(d time.Duration) string {
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	return strconv.FormatInt(m, 10)
}

// unixMS renders t as Unix milliseconds, the server clock's unit.
func unixMS(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Statuses of renew.lua, release.lua and finish.lua.
const (
	statusHeld     = "held"     // the lease held this token (extended or deleted)
	statusExpired  = "expired"  // no lease key
	statusTaken    = "taken"    // another token's
	statusReplaced = "replaced" // renew: held and extended, but a successor waits
	statusDone     = "done"     // finish: this very record was already written
)

// statusErr maps a renew/release/finish status to its sentinel (nil when
// held).
func statusErr(s string) error {
	switch s {
	case statusHeld, statusReplaced, statusDone:
		return nil
	case statusExpired:
		return ErrLeaseExpired
	case statusTaken:
		return ErrLeaseTaken
	}
	return fmt.Errorf("locker: unexpected status %q", s)
}

// Replies of obtain.lua and take.lua.
const (
	replyWon        = "won"
	replyWait       = "wait"
	replyClaimed    = "claimed"
	replyBusy       = "busy"
	replyPaused     = "paused"
	replyEarly      = "early"
	replyLate       = "late"
	replyUnborn     = "unborn"
	replySuperseded = "superseded"
	replyRecorded   = "recorded"
)

// obtainReply is one node's answer to obtain.lua (or take.lua).
type obtainReply struct {
	code   string // one of the reply* constants
	fence  int64  // won, wait
	pttl   int64  // won, wait: the lease's TTL (ms); refusals: the blocking key's
	record string // claimed: the mark's final record, if any
	token  string // claimed: the token of the claim holding the mark, if any
	num    int64  // early: ms to wait; late: ms over; unborn: first sight (unix s)
	due    int64  // won (obtain.lua): ms until Claim.Due on the node's clock
}

// ok says whether the node granted the claim (wait: the slot, not yet the
// lease).
func (r obtainReply) ok() bool { return r.code == replyWon || r.code == replyWait }

func parseObtain(v any) (obtainReply, error) {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return obtainReply{}, fmt.Errorf("locker: unexpected obtain reply %v", v)
	}
	code, _ := a[0].(string)
	num := func(i int) int64 {
		if i < len(a) {
			n, _ := a[i].(int64)
			return n
		}
		return 0
	}
	r := obtainReply{code: code}
	switch code {
	case replyWon, replyWait:
		r.fence, r.pttl, r.due = num(1), num(2), num(3)
	case replyClaimed:
		r.pttl = num(1)
		if len(a) > 2 {
			r.record, _ = a[2].(string)
		}
		if len(a) > 3 {
			r.token, _ = a[3].(string)
		}
	case replyBusy, replyPaused:
		r.pttl = num(1)
	case replyEarly, replyLate, replyUnborn:
		r.num = num(1)
	case replySuperseded, replyRecorded:
	default:
		return obtainReply{}, fmt.Errorf("locker: unexpected obtain reply %v", v)
	}
	return r, nil
}

// err is the NotObtainedError of a refusal.
func (r obtainReply) err() *NotObtainedError {
	e := &NotObtainedError{Reason: ErrNotObtained}
	switch r.code {
	case replyPaused:
		e.Reason = ErrPaused
	case replyClaimed:
		e.Reason, e.Record = ErrSlotClaimed, r.record
	case replyEarly:
		e.Reason, e.Wait = ErrEarly, time.Duration(r.num)*time.Millisecond
	case replyLate:
		e.Reason = ErrLate
	case replyUnborn:
		e.Reason, e.FirstSeen = ErrUnborn, time.Unix(r.num, 0).UTC()
	case replySuperseded:
		e.Reason = ErrNotObtained
	}
	if r.pttl > 0 && !r.ok() {
		e.TTL = time.Duration(r.pttl) * time.Millisecond
	}
	return e
}

func parseFinish(v any) (status string, recorded bool, err error) {
	if a, ok := v.([]any); ok && len(a) == 2 {
		s, ok1 := a[0].(string)
		r, ok2 := a[1].(int64)
		if ok1 && ok2 {
			return s, r == 1, nil
		}
	}
	return "", false, fmt.Errorf("locker: unexpected finish reply %v", v)
}
