package locker

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts, each wrapped once with prelude.lua in front (named
// arguments, shared helpers), and once more all together, in batch.lua.
// They are sent as EVALSHA (pipelined with other callers' commands when a
// node is busy, see node, and then carried in one batch.lua call, see
// combine) and rerun as EVAL when the server answers NOSCRIPT (after a
// restart or SCRIPT FLUSH). Each script's header comment lists its keys,
// arguments and reply.
var (
	//go:embed prelude.lua
	preludeLua string

	//go:embed obtain.lua
	obtainLua string
	// obtainScript claims a lease, and a slot when the claim has one.
	obtainScript = newScript("obtain", obtainLua)

	//go:embed renew.lua
	renewLua string
	// renewScript extends a lease and its running mark.
	renewScript = newScript("renew", renewLua)

	//go:embed release.lua
	releaseLua string
	// releaseScript deletes a lease, keeping, ending or dropping its mark.
	releaseScript = newScript("release", releaseLua)

	//go:embed finish.lua
	finishLua string
	// finishScript ends a run: the lease goes, the final record stays.
	finishScript = newScript("finish", finishLua)

	//go:embed take.lua
	takeLua string
	// takeScript hands a replaced run's lease to its successor.
	takeScript = newScript("take", takeLua)

	//go:embed fence.lua
	fenceLua string
	// fenceScript raises a fence counter (quorum write-back).
	fenceScript = newScript("fence", fenceLua)

	//go:embed record.lua
	recordLua string
	// recordScript records a skip for a slot nobody claimed.
	recordScript = newScript("record", recordLua)

	//go:embed batch.lua
	batchLua string
	// batchScript runs several calls of the scripts above in one EVALSHA
	// (see combine).
	batchScript = newBatchScript(batchLua, obtainScript, renewScript, releaseScript, finishScript, takeScript, fenceScript, recordScript)
)

// script is a Lua script wrapped once by redis.NewScript, with its SHA1
// boxed once for the command lines, the length of its longest command line
// so far, to size the next one, and the names of the keys of its last line
// (see keyNames). A named script's calls can travel in batch.lua's (see
// combine); an unnamed one's (tests) are sent on their own.
type script struct {
	name    string
	body    string
	src     string
	sha     any
	longest atomic.Int32
	names   atomic.Pointer[keyNames]
}

// keyNames is the names of a line's keys, as sent and boxed once: a
// script's lines mostly name the same keys.
type keyNames struct {
	text string
	box  any
}

// loadCall is the line by which a script sent alone reads its call (see
// prelude.lua).
const loadCall = "load_call(1, 1, #ARGV)"

// newScript wraps body, a script named name ("" for none), with prelude.lua.
func newScript(name, body string) *script {
	src := preludeLua + "\n" + loadCall + "\n" + body
	return &script{name: name, body: body, src: src, sha: redis.NewScript(src).Hash()}
}

// newBatchScript wraps batch.lua with prelude.lua and the bodies of ss, each
// a function under its name.
func newBatchScript(batch string, ss ...*script) *script {
	var b strings.Builder
	b.WriteString(preludeLua)
	b.WriteString("\nlocal bodies = {}\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "bodies[%q] = function()\n%s\nend\n", s.name, s.body)
	}
	b.WriteString(batch)
	src := b.String()
	return &script{name: "batch", src: src, sha: redis.NewScript(src).Hash()}
}

// args builds a command line of s in the calling convention of
// prelude.lua: the names of the keys given, then name/value pairs. A key
// or argument that is not given is simply absent. The line is built in
// place, in one slice as long as s's longest line so far (a replica builds
// lines for thousands of firings a second): every key comes before the
// first argument.
type args struct {
	s     *script
	out   []any // "evalsha", sha, nkeys, keys..., names, pairs...
	names []byte
	at    int // index of names in out, once the first argument came
}

// args starts a command line of s.
func (s *script) args() *args {
	out := make([]any, 3, max(int(s.longest.Load()), 16))
	out[0] = "evalsha"
	return &args{s: s, out: out, names: make([]byte, 0, 64)}
}

// key adds KEYS entry k under name; an empty k is not added. It panics
// after an argument (a bug in this package).
func (a *args) key(name, k string) *args {
	if k == "" {
		return a
	}
	if a.at > 0 {
		panic("locker: script key " + name + " after an argument")
	}
	if len(a.names) > 0 {
		a.names = append(a.names, ',')
	}
	a.names = append(a.names, name...)
	a.out = append(a.out, k)
	return a
}

// arg adds the argument name = v (a string, or a number formatted once).
func (a *args) arg(name string, v any) *args {
	a.endKeys()
	a.out = append(a.out, name, v)
	return a
}

// endKeys ends the keys: the names' place follows them.
func (a *args) endKeys() {
	if a.at == 0 {
		a.at = len(a.out)
		a.out = append(a.out, nil)
	}
}

// argIf adds the argument when v is not empty.
func (a *args) argIf(name, v string) *args {
	if v == "" {
		return a
	}
	return a.arg(name, v)
}

// line returns the command line "EVALSHA sha nkeys keys... names pairs...".
func (a *args) line() []any {
	a.endKeys()
	out := a.out
	n := a.s.names.Load()
	if n == nil || n.text != string(a.names) {
		n = &keyNames{text: string(a.names)}
		n.box = n.text
		a.s.names.Store(n)
	}
	out[1], out[2], out[a.at] = a.s.sha, a.at-3, n.box
	for l := a.s.longest.Load(); int32(len(out)) > l; l = a.s.longest.Load() {
		if a.s.longest.CompareAndSwap(l, int32(len(out))) {
			break
		}
	}
	return out
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
	replyAbsent     = "absent" // record.lua's probe: the skip would be written (num 1: on the proof past the mark's window)
)

// obtainReply is one node's answer to obtain.lua (or take.lua).
type obtainReply struct {
	code   string // one of the reply* constants
	fence  int64  // won, wait
	pttl   int64  // won, wait: the lease's TTL (ms); refusals: the blocking key's
	record string // claimed: the mark's final record, if any
	token  string // claimed: the token of the claim holding the mark, if any
	num    int64  // early: ms to wait; late: ms over (obtain.lua) or the high-water slot (record.lua, unix s); unborn: first sight (unix s)
	prev   bool   // early: the wait is for the slot before (Claim.PrevUntil)
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
	case replyEarly, replyLate, replyUnborn, replyAbsent:
		r.num = num(1)
		r.prev = code == replyEarly && len(a) > 2 && a[2] == "prev"
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
		e.Reason, e.Wait, e.Prev = ErrEarly, time.Duration(r.num)*time.Millisecond, r.prev
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
