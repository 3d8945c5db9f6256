package locker

import (
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts, each wrapped once. They are sent as EVALSHA (pipelined
// with other callers' commands when a node is busy, see node) and rerun as
// EVAL when the server answers NOSCRIPT (after a restart or SCRIPT FLUSH).
var (
	//go:embed obtain.lua
	obtainLua string
	// obtainScript: KEYS = lease, mark|lease, fence, pause|lease;
	// ARGV = token, ttl ms, hasMark, mark ttl ms, busy record, hasPause, replace.
	// Returns the fence, or {code, pttl, record} (1 paused, 2 claimed, 3 busy).
	obtainScript = newScript(obtainLua)

	//go:embed obtain_plain.lua
	obtainPlainLua string
	// obtainPlainScript: KEYS = lease, fence; ARGV = token, ttl ms. For a
	// claim without mark, pause or Replace. Returns the fence or {3, pttl, ""}.
	obtainPlainScript = newScript(obtainPlainLua)

	//go:embed renew.lua
	renewLua string
	// renewScript: KEYS = lease, mark|lease; ARGV = token, ttl ms, hasMark,
	// mark ttl ms. Returns 1 extended, 0 expired, -1 taken.
	renewScript = newScript(renewLua)

	//go:embed release.lua
	releaseLua string
	// releaseScript: KEYS = lease, mark|lease; ARGV = token, dropMark.
	// Returns 1 deleted, 0 expired, -1 taken.
	releaseScript = newScript(releaseLua)

	//go:embed finish.lua
	finishLua string
	// finishScript: KEYS = lease, mark|lease, history|lease; ARGV = token,
	// record, retention ms, hasMark, hasHistory, history len, history ttl ms.
	// Returns {status, recorded}.
	finishScript = newScript(finishLua)

	//go:embed fence.lua
	fenceLua string
	// fenceScript: KEYS = fence; ARGV = F. Sets the counter to max(current, F).
	fenceScript = newScript(fenceLua)
)

// script is a Lua script wrapped once by redis.NewScript, with its SHA1
// boxed once for the command lines.
type script struct {
	src string
	sha any
}

func newScript(src string) *script {
	return &script{src: src, sha: redis.NewScript(src).Hash()}
}

// line returns the command line "EVALSHA sha nkeys keysAndArgs...".
func (s *script) line(nkeys int, keysAndArgs ...any) []any {
	a := make([]any, 0, 3+len(keysAndArgs))
	a = append(a, "evalsha", s.sha, nkeys)
	return append(a, keysAndArgs...)
}

// Script status codes shared by renew, release and finish.
const (
	statusHeld    = 1
	statusExpired = 0
	statusTaken   = -1
)

// Failure codes of obtain.lua.
const (
	codePaused  = 1
	codeClaimed = 2
	codeBusy    = 3
)

// RunningPrefix starts the record that Obtain writes to a claim's MarkKey
// while the run lasts: "running:<token>:<fence>".
const RunningPrefix = "running:"

// SkippedAborted replaces a claim's running mark when the claim is undone
// after it may have been seen to win (confirmed too late, or its reply lost):
// the slot stays claimed, and its loss is on record.
const SkippedAborted = "skipped:aborted"

// SkippedPaused is the record Obtain writes to an absent MarkKey when the
// claim's PauseKey exists.
const SkippedPaused = "skipped:paused"

// obtainReply is one node's answer to obtain.lua.
type obtainReply struct {
	fence  int64 // > 0 on success
	code   int64 // 0 on success, else codePaused, codeClaimed or codeBusy
	pttl   int64
	record string
}

func parseObtain(v any) (obtainReply, error) {
	switch v := v.(type) {
	case int64:
		return obtainReply{fence: v}, nil
	case []any:
		if len(v) == 3 {
			code, ok1 := v[0].(int64)
			pttl, ok2 := v[1].(int64)
			rec, ok3 := v[2].(string)
			if ok1 && ok2 && ok3 {
				return obtainReply{code: code, pttl: pttl, record: rec}, nil
			}
		}
	}
	return obtainReply{}, fmt.Errorf("locker: unexpected obtain reply %v", v)
}

// err is the NotObtainedError for a failed reply.
func (r obtainReply) err() *NotObtainedError {
	e := &NotObtainedError{Reason: ErrNotObtained}
	switch r.code {
	case codePaused:
		e.Reason = ErrPaused
	case codeClaimed:
		e.Reason, e.Record = ErrSlotClaimed, r.record
	}
	if r.pttl > 0 {
		e.TTL = time.Duration(r.pttl) * time.Millisecond
	}
	return e
}

func parseFinish(v any) (status int64, recorded bool, err error) {
	if a, ok := v.([]any); ok && len(a) == 2 {
		s, ok1 := a[0].(int64)
		r, ok2 := a[1].(int64)
		if ok1 && ok2 {
			return s, r == 1, nil
		}
	}
	return 0, false, fmt.Errorf("locker: unexpected finish reply %v", v)
}

// statusErr maps a renew/release status to its sentinel (nil when held).
func statusErr(s int64) error {
	switch s {
	case statusHeld:
		return nil
	case statusExpired:
		return ErrLeaseExpired
	case statusTaken:
		return ErrLeaseTaken
	}
	return fmt.Errorf("locker: unexpected status %d", s)
}

// ms renders d in whole milliseconds (at least 1) for PX and PEXPIRE.
func ms(d time.Duration) string {
	m := d.Milliseconds()
	if m < 1 {
		m = 1
	}
	return strconv.FormatInt(m, 10)
}

// Script flags, boxed once.
var (
	argTrue  any = "1"
	argFalse any = "0"
)

func flag(b bool) any {
	if b {
		return argTrue
	}
	return argFalse
}
