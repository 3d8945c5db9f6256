// Package locker provides Redis leases for redcron: a claim that takes a
// lease key with a 128-bit random token and a fencing number in one round
// trip, a watchdog that renews the lease while a run lasts and cancels the
// lease's context with ErrLeaseLost when it is lost, and a token-checked
// Release and Finish. It works on one Redis (standalone, Sentinel or Cluster
// through redis.UniversalClient) or on N independent masters with the
// Redlock algorithm (NewQuorum).
//
// All keys of one Claim must share a hash tag, e.g. "redcron:{backup}:run"
// and "redcron:{backup}:fence", so that the scripts also run on Cluster.
package locker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// Locker obtains leases. It is safe for concurrent use. It does not own its
// clients: closing them is the caller's business, after every lease ended.
//
// Commands that concurrent callers send to the same node while a round trip
// to it is in flight are pipelined together (automatic pipelining; each call
// keeps its own timeout and context). The goroutine that sends a node's
// batches exits as soon as the node has nothing queued, so a Locker needs no
// Close: once every call has returned, it holds no goroutine.
type Locker struct {
	nodes  []*node
	quorum int // majority; 1 for a single node
	opts   Options
}

// New returns a Locker on one Redis (standalone, Sentinel or Cluster via
// UniversalClient). Obtain and Release are one EVALSHA each; a call made
// while no other is in flight runs on the caller's goroutine, the others
// are pipelined by one goroutine that exits when none is left (see Locker).
// A watched lease starts one goroutine, its watchdog. Give it a client with
// ContextTimeoutEnabled, so that NodeTimeout bounds the socket and not only
// the wait, and MaxRetries -1: the locker and its caller own retrying
// (a claim retried after a lost reply is recognised by its own mark).
func New(client redis.UniversalClient, opts Options) *Locker {
	return &Locker{nodes: []*node{{client: client}}, quorum: 1, opts: opts.withDefaults()}
}

// NewQuorum returns a Locker over N >= 1 independent masters (Redlock); a
// lease needs a majority, N/2+1. With one client it is the same as New.
//
// Obtain fans out to every node in parallel, each call bounded by
// NodeTimeout, and succeeds once a majority claimed the key and the validity
// TTL - elapsed - drift (drift default TTL/100 + 2ms) is still positive; it
// does not wait for slower nodes. On failure it releases on every node
// (best effort, after every claim answered or timed out, each bounded by
// NodeTimeout) and returns ErrNoQuorum, or, when state refusals alone made a
// majority impossible, the state error (ErrNotObtained, ErrSlotClaimed,
// ErrPaused) most nodes gave. Release and Finish first wait for the lease's
// claims still in flight (bounded by NodeTimeout), so that none lands on a
// node after the lease ended there; then they wait for every node's answer.
// A renewal needs a majority within the validity; otherwise the lease is
// lost at its local deadline, or at once when so many nodes report the key
// gone or taken that no majority is possible. Marks, busy records and
// history are written on each node, as in single-node mode.
//
// Fence guarantee. Each node INCRs its own counter; the lease's fence F is
// the maximum of the INCR results of the majority whose claims made Obtain
// succeed. Before Obtain returns, a majority of nodes has the counter at F
// or above: the nodes whose INCR returned F have it already (in the common
// case that is the whole majority, and no write is sent); otherwise
// counter = max(counter, F) is written to every other node until, counting
// those, a majority has acknowledged it. Hence: for two leases on the
// same FenceKey whose Obtain calls do not overlap in time (the first
// returned before the second began), the later lease's fence is strictly
// greater, provided that a node in both majorities (two majorities always
// share one) kept its counter in between. With AOF and appendfsync always a
// restart keeps it; a node that restarts without persistence may break the
// promise. Nothing is promised about leases whose Obtain calls overlap in
// time (at most one of them can hold the key anyway), and a fence is not
// unique across different FenceKeys.
func NewQuorum(clients []redis.UniversalClient, opts Options) (*Locker, error) {
	if len(clients) == 0 {
		return nil, fmt.Errorf("%w: NewQuorum needs at least one client", ErrInvalid)
	}
	for i, c := range clients {
		if c == nil {
			return nil, fmt.Errorf("%w: NewQuorum client %d is nil", ErrInvalid, i)
		}
	}
	nodes := make([]*node, len(clients))
	for i, c := range clients {
		nodes[i] = &node{client: c}
	}
	return &Locker{nodes: nodes, quorum: len(nodes)/2 + 1, opts: opts.withDefaults()}, nil
}

// Claim says what Obtain takes, in one round trip per node (one Lua script;
// all keys must share a {hash tag}).
type Claim struct {
	// Key is the lease key, e.g. "redcron:{backup}:run". Required.
	Key string
	// FenceKey is the job's fence counter, e.g. "redcron:{backup}:fence". It
	// is INCRed on every successful claim and has no TTL (one key per job,
	// a fixed bound). Required.
	FenceKey string
	// TTL is the lease length; the watchdog renews every TTL/3. Required,
	// at least 1ms (Redis expiries are in milliseconds).
	TTL time.Duration

	// MarkKey is an optional slot mark: if it exists, Obtain fails with
	// ErrSlotClaimed (NotObtainedError.Record holds its value). On success it
	// is set to "running:<token>:<fence>" for max(MarkTTL, TTL); renewals
	// keep it alive for max(MarkTTL, TTL) from each renewal while it holds
	// that record; Finish overwrites it with the final record. Release leaves
	// it, so a released slot stays claimed until it expires.
	MarkKey string
	// MarkTTL is the mark's lifetime; required (> 0) with MarkKey.
	MarkTTL time.Duration
	// BusyRecord, with MarkKey, is written to the mark for MarkTTL when the
	// lease key is held by another token (and not Replace), so that the slot
	// is skipped once, by one replica, e.g. "skipped:overlap"; Obtain then
	// fails with ErrNotObtained and does not retry. Empty: leave the mark
	// absent.
	BusyRecord string
	// PauseKey, when set and present, makes Obtain fail with ErrPaused; with
	// MarkKey, "skipped:paused" is written to the mark for MarkTTL. The mark
	// is checked before the pause key, so a paused slot is recorded and
	// refused with ErrPaused once, by one claim: every later claim of the
	// slot fails with ErrSlotClaimed (Record "skipped:paused").
	PauseKey string
	// Replace takes the lease key even when another token holds it (overlap
	// "replace"): the old holder's next renewal sees another token and its
	// lease context is cancelled with ErrLeaseLost.
	Replace bool
	// HistoryKey, HistoryLen and HistoryTTL: Finish LPUSHes its record to
	// HistoryKey, LTRIMs the list to HistoryLen entries and sets its TTL to
	// HistoryTTL, so the list is bounded. Empty HistoryKey: no history;
	// otherwise HistoryLen and HistoryTTL must be positive.
	HistoryKey string
	HistoryLen int
	HistoryTTL time.Duration
	// Unwatched leases have no watchdog: the caller renews with Lease.Renew
	// or lets the lease expire. Their context is not cancelled at the local
	// deadline; it ends when Renew finds the lease gone, or on Release or
	// Finish. Deadline tells the caller how long the lease is safe.
	Unwatched bool
}

func (c *Claim) validate() error {
	switch {
	case c.Key == "":
		return fmt.Errorf("%w: claim without Key", ErrInvalid)
	case c.FenceKey == "":
		return fmt.Errorf("%w: claim %q without FenceKey", ErrInvalid, c.Key)
	case c.TTL < time.Millisecond:
		return fmt.Errorf("%w: claim %q: TTL %v < 1ms", ErrInvalid, c.Key, c.TTL)
	case c.MarkKey != "" && c.MarkTTL < time.Millisecond:
		return fmt.Errorf("%w: claim %q: MarkKey without a MarkTTL", ErrInvalid, c.Key)
	case c.HistoryKey != "" && (c.HistoryLen <= 0 || c.HistoryTTL < time.Millisecond):
		return fmt.Errorf("%w: claim %q: HistoryKey needs HistoryLen and HistoryTTL", ErrInvalid, c.Key)
	}
	return nil
}

// markTTL is how long the running mark lives from a claim or renewal.
func (c *Claim) markTTL() time.Duration { return max(c.MarkTTL, c.TTL) }

// orKey returns k, or the lease key in its place when k is empty: scripts
// get a fixed number of keys, all in the claim's hash slot.
func (c *Claim) orKey(k string) string {
	if k == "" {
		return c.Key
	}
	return k
}

// leaseArgs are a lease's script arguments, boxed once: Obtain, every
// renewal, Release and Finish send them.
type leaseArgs struct {
	key, mark, token, ttl, hasMark, markTTL any
}

func (c *Claim) leaseArgs(token string) leaseArgs {
	a := leaseArgs{key: c.Key, mark: c.Key, token: token, ttl: ms(c.TTL), hasMark: argFalse}
	a.markTTL = a.ttl
	if c.MarkKey != "" {
		a.mark, a.hasMark, a.markTTL = c.MarkKey, argTrue, ms(c.markTTL())
	}
	return a
}

// plain says whether the claim needs only obtain_plain.lua.
func (c *Claim) plain() bool { return c.MarkKey == "" && c.PauseKey == "" && !c.Replace }

// obtainLine is the claim's obtain command line and its script.
func (c *Claim) obtainLine(a *leaseArgs) (*script, []any) {
	if c.plain() {
		return obtainPlainScript, obtainPlainScript.line(2, a.key, c.FenceKey, a.token, a.ttl)
	}
	return obtainScript, obtainScript.line(4, a.key, a.mark, c.FenceKey, c.orKey(c.PauseKey),
		a.token, a.ttl, a.hasMark, a.markTTL, c.BusyRecord, flag(c.PauseKey != ""), flag(c.Replace))
}

// renewLine is renew.lua's command line.
func (a *leaseArgs) renewLine() []any {
	return renewScript.line(2, a.key, a.mark, a.token, a.ttl, a.hasMark, a.markTTL)
}

// What release.lua does with the lease's own running mark.
const (
	markKeep  = "0" // Release: a released slot stays claimed
	markDrop  = "1" // undo a quorum claim that lost the vote
	markAbort = "2" // undo a claim others may have seen win: SkippedAborted
)

// releaseLine is release.lua's command line, with what to do to the mark.
func (a *leaseArgs) releaseLine(markMode string) []any {
	return releaseScript.line(2, a.key, a.mark, a.token, markMode, SkippedAborted)
}

// Acquire is Obtain(ctx, Claim{Key: key, FenceKey: fenceKey, TTL: ttl}): a
// watched lease, without mark, pause or history.
func (l *Locker) Acquire(ctx context.Context, key, fenceKey string, ttl time.Duration) (*Lease, error) {
	return l.Obtain(ctx, Claim{Key: key, FenceKey: fenceKey, TTL: ttl})
}

// Obtain claims c: the pause check, the mark check, the lease key (NX, or
// replacing another token with Replace), the fence INCR and the running
// mark, in one script per node. On success the lease is held until Release,
// Finish or loss; unless c.Unwatched, a watchdog renews it every TTL/3 and
// the caller must end it with Release or Finish. The lease's context is
// derived from ctx's values but not its cancellation: ctx ending after
// Obtain returns does not end the lease.
//
// Errors: a NotObtainedError wrapping ErrNotObtained, ErrSlotClaimed or
// ErrPaused when state refused the claim; ErrNoQuorum (wrapped) when nodes
// did not confirm in time; ErrInvalid for a malformed claim; otherwise the
// I/O error, joined with ctx.Err() when ctx ended the call. Retries (see
// Options) apply to ErrNotObtained and ErrNoQuorum.
func (l *Locker) Obtain(ctx context.Context, c Claim) (*Lease, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		var lease *Lease
		var err error
		if len(l.nodes) == 1 {
			lease, err = l.obtainSingle(ctx, &c)
		} else {
			lease, err = l.obtainQuorum(ctx, &c)
		}
		if err == nil {
			return lease, nil
		}
		if attempt >= l.opts.Retries || !retryable(err, &c) || ctx.Err() != nil {
			return nil, err
		}
		t := time.NewTimer(mrand.N(l.opts.RetryDelay) + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, withCtx(ctx, err)
		case <-t.C:
		}
	}
}

func retryable(err error, c *Claim) bool {
	if errors.Is(err, ErrNoQuorum) {
		return true
	}
	return errors.Is(err, ErrNotObtained) && (c.MarkKey == "" || c.BusyRecord == "")
}

// obtainSingle is the single-node hot path: one EVALSHA, on the caller's
// goroutine unless other calls are in flight (then pipelined with them).
func (l *Locker) obtainSingle(ctx context.Context, c *Claim) (*Lease, error) {
	a := c.leaseArgs(newToken())
	s, line := c.obtainLine(&a)
	start := time.Now()
	cmd := redis.NewCmd(ctx, line...)
	err := l.nodes[0].run(newCall(ctx, cmd, s.src, start, l.opts.NodeTimeout))
	if err == nil {
		var r obtainReply
		if r, err = parseObtain(cmd.Val()); err == nil {
			if r.code != 0 {
				return nil, fmt.Errorf("locker: obtain %q: %w", c.Key, r.err())
			}
			lease := newLease(l, c, r.fence, start, a)
			if time.Now().Before(lease.deadline) {
				lease.start(ctx)
				return lease, nil
			}
			err = fmt.Errorf("%w: confirmed after %v", ErrTooLate, time.Since(start))
		}
	}
	// The script may have run even though we saw an error, and other
	// replicas may have seen its running mark and given the slot up: undo
	// the lease, but turn the mark into a SkippedAborted record so the slot
	// stays claimed and recorded rather than silently claimable again. The
	// undo queues behind the claim on the node, so it cannot overtake it.
	go l.abort(&a)
	return nil, fmt.Errorf("locker: obtain %q: %w", c.Key, withCtx(ctx, err))
}

// abort deletes the lease key on the single node if it holds the claim's
// token and turns its running mark into SkippedAborted; best effort,
// bounded by NodeTimeout.
func (l *Locker) abort(a *leaseArgs) {
	ctx := context.Background()
	_ = l.nodes[0].run(newCall(ctx, redis.NewCmd(ctx, a.releaseLine(markAbort)...), releaseScript.src, time.Now(), l.opts.NodeTimeout))
}

// newToken returns 128 random bits in hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func noop() {}
