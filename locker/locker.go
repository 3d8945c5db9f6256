// Package locker provides Redis leases for redcron: a claim that takes a
// lease key with a 128-bit random token and a fencing number in one round
// trip, a watchdog that renews the lease while a run lasts and cancels the
// lease's context with ErrLeaseLost when it is lost, and a token-checked
// Release and Finish. A slot claim also guards its slot for good (a
// high-water slot per job) and checks the slot against the server's clock.
// It works on one Redis (standalone, Sentinel or Cluster through a Client)
// or on N independent masters with the Redlock algorithm (NewQuorum).
//
// The caller names every key and builds every record (see Claim); all keys
// of one Claim must share a hash tag, e.g. "redcron:{backup}:lease" and
// "redcron:{backup}:meta", so that the scripts also run on Cluster.
package locker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is what the locker needs of a go-redis client: commands,
// pipelines and pub/sub. *redis.Client, *redis.ClusterClient and
// Sentinel's failover client satisfy it. Give it MaxRetries -1 (the locker
// and its caller own retrying: a claim is retried as itself) and
// ContextTimeoutEnabled, so that each call's bound holds on the socket.
type Client interface {
	Process(ctx context.Context, cmd redis.Cmder) error
	Pipeline() redis.Pipeliner
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Locker obtains leases. It is safe for concurrent use. It does not own its
// clients: closing them is the caller's business, after every lease ended.
//
// Commands that concurrent callers send to the same node while a round trip
// to it is in flight are pipelined together (automatic pipelining; each call
// keeps its own timeout and context), and, when the client is a
// *redis.Client (one server, not a cluster), their scripts run in one
// batch.lua call. The goroutine that sends a node's
// batches exits as soon as the node has nothing queued, and the pub/sub
// connection of replace notices closes with the last lease that needs it,
// so a Locker needs no Close: once every call and lease has ended, it holds
// no goroutine.
type Locker struct {
	nodes   []*node
	quorum  int // majority; 1 for a single node
	opts    Options
	notices notices
}

// New returns a Locker on one Redis (standalone, Sentinel or Cluster). A
// claim, a renewal and a finish are one script call each; a call made while
// no other is in flight runs on the caller's goroutine as an EVALSHA, the
// others are pipelined by one goroutine that exits when none is left, their
// scripts in one batch.lua call unless Options.Unbatched or a Cluster
// client (see Locker). A
// watched lease starts one goroutine, its watchdog. It fails with
// ErrInvalid for a client that retries commands by itself or lets a call
// outlive its context (see Client).
func New(client Client, opts Options) (*Locker, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	if err := checkAck(client, opts); err != nil {
		return nil, err
	}
	l := &Locker{nodes: []*node{newNode(client, opts.Unbatched)}, quorum: 1, opts: opts.withDefaults()}
	l.nodes[0].lanes[laneMain].ack = l.opts.ackPolicy()
	l.notices.init(l)
	return l, nil
}

// checkClient refuses the go-redis settings that break the locker: its own
// command retries (a claim retried blindly after a lost reply would find
// its own mark and look like another replica's) and calls not bounded by
// their context on the socket.
func checkClient(c Client) error {
	var retries int
	var ctxTimeout bool
	switch o := c.(type) {
	case interface{ Options() *redis.Options }:
		retries, ctxTimeout = o.Options().MaxRetries, o.Options().ContextTimeoutEnabled
	case interface{ Options() *redis.ClusterOptions }:
		retries, ctxTimeout = o.Options().MaxRetries, o.Options().ContextTimeoutEnabled
	default:
		return nil // another implementation: its owner vouches for it
	}
	switch {
	case retries > 0:
		return fmt.Errorf("%w: the client retries commands itself (MaxRetries %d): set MaxRetries: -1", ErrInvalid, retries)
	case !ctxTimeout:
		return fmt.Errorf("%w: the client does not bound calls by their context: set ContextTimeoutEnabled: true", ErrInvalid)
	}
	return nil
}

// NewQuorum returns a Locker over N >= 1 independent masters (Redlock); a
// lease needs a majority, N/2+1. With one client it is the same as New.
//
// A claim fans out to every node in parallel, each call bounded by
// NodeTimeout, and succeeds once a majority claimed the key and the validity
// TTL - elapsed - drift (drift default TTL/100 + 2ms) is still positive; it
// does not wait for slower nodes. A claim that surely lost the vote (split
// among claimants) deletes its marks and puts each node's high-water back,
// so that a retry can win; one that may have won on a majority is kept, to
// be retried as itself or withdrawn (see Bid). Release and Finish first wait
// for the lease's claims still in flight (bounded by NodeTimeout), so that
// none lands on a node after the lease ended there; then they wait for
// every node's answer. A renewal needs a majority within the validity;
// otherwise the lease is lost at its local deadline, or at once when so
// many nodes report the key gone or taken that no majority is possible.
// Marks, records, high-water slots and history are kept on each node.
//
// Server time. Each node checks a slot claim against its own clock (TIME):
// a claim is refused as early or late when a majority of nodes says so,
// so "the server's clock" is that of a majority of nodes. ServerClock
// reports the median of the nodes' offsets, which a majority bounds.
//
// Fence guarantee. Each node increments its own counter; the lease's fence F
// is the maximum of the results of the majority whose claims made the claim
// succeed. Before Obtain returns, a majority of nodes has the counter at F
// or above: the nodes whose increment returned F have it already (in the
// common case that is the whole majority, and no write is sent); otherwise
// counter = max(counter, F) is written to every other node until, counting
// those, a majority has acknowledged it. A node acknowledges when the
// write-back raised its counter, or when the claim holds the lease there:
// meanwhile no other claim of the same Key takes a number there that it
// can run with (a waiting replace claim takes new ones as it takes the
// lease over). Where another claim took F or more without it, that claim
// may hold F, and win with it once this lease expired. Every claim of a
// MetaKey is assumed to use the same Key (with overlap allow's key per
// slot, runs whose claims overlap may share a fence). Hence: for two
// leases on the same MetaKey whose claims do not overlap in time (the
// first returned before the second began), the later lease's fence is
// strictly greater, provided that a node in both majorities (two
// majorities always share one) kept its counter in between. With AOF and appendfsync always a restart
// keeps it; a node that restarts without persistence may break the
// promise. Release and Finish also raise the counter to F on each node
// where they free the lease, so that a claim granted on a node after the
// lease ended there takes a greater number even when its Obtain overlapped
// this one's (a scheduler's claim of the next slot, sent while this slot's
// claim is on its way, which may find this slot's write-back not yet in).
// An overlap "replace" claim, which takes its numbers when it starts to
// wait, takes new ones as it takes the lease over (take.lua, also when
// retried as itself after the run it waited for ended), and writes their
// maximum back; its wait numbers are not written back. A claim retried as
// itself takes, on a node where the counter went past its mark's number,
// the number it wrote back there itself, or else a new one (see
// obtain.lua). Not covered: when this lease expires instead of ending, a
// claim that overlapped this one's, one attempt of which lasts past that
// expiry (its call queued in its process), can win with a number it took
// on a node before this claim's write-back raised it there: below this
// lease's fence. A fence is not unique across different MetaKeys.
func NewQuorum(clients []Client, opts Options) (*Locker, error) {
	if len(clients) == 0 {
		return nil, fmt.Errorf("%w: NewQuorum needs at least one client", ErrInvalid)
	}
	if opts.MinReplicasAck > 0 && len(clients) > 1 {
		return nil, fmt.Errorf("%w: MinReplicasAck is for one node; a quorum survives the loss of a minority of masters instead", ErrInvalid)
	}
	nodes := make([]*node, len(clients))
	for i, c := range clients {
		if c == nil {
			return nil, fmt.Errorf("%w: NewQuorum client %d is nil", ErrInvalid, i)
		}
		if err := checkClient(c); err != nil {
			return nil, fmt.Errorf("NewQuorum client %d: %w", i, err)
		}
		nodes[i] = newNode(c, opts.Unbatched)
	}
	if err := checkAck(clients[0], opts); err != nil {
		return nil, err
	}
	l := &Locker{nodes: nodes, quorum: Majority(len(nodes)), opts: opts.withDefaults()}
	if len(nodes) == 1 {
		nodes[0].lanes[laneMain].ack = l.opts.ackPolicy()
	}
	l.notices.init(l)
	return l, nil
}

// Majority is the number of nodes out of n that make a quorum: n/2 + 1.
func Majority(n int) int { return n/2 + 1 }

// Nodes is the number of Redis nodes (1, or the masters of a quorum).
func (l *Locker) Nodes() int { return len(l.nodes) }

// Stuck says whether claims sent now could not reach a majority of nodes
// soon: on so many nodes that no majority is left, the claims' lane has
// waited more than d for a reply (replies held, or the connection cut
// without an error yet), and new claims queue behind that call.
func (l *Locker) Stuck(d time.Duration) bool {
	now, stuck := time.Now(), 0
	for _, n := range l.nodes {
		if n.lanes[laneMain].waiting(now) > d {
			stuck++
		}
	}
	return stuck > len(l.nodes)-l.quorum
}

// Backlog is how long the claims' calls have waited in this process to
// reach a majority of the nodes in an overload: on each node, the age of
// the oldest claim, finish or release not yet answered (in flight or
// queued; skip records wait behind them and are not counted) when more
// than maxBatch of them wait, and 0 when fewer do or when the reply in
// flight has waited more than half that age (a node that does not
// answer: an outage, not an overload); of these the majority-th shortest.
func (l *Locker) Backlog() time.Duration {
	now := time.Now()
	bs := make([]time.Duration, len(l.nodes))
	for i, n := range l.nodes {
		bs[i] = n.lanes[laneMain].backlog(now)
	}
	slices.Sort(bs)
	return bs[l.quorum-1]
}

// Bid is one claim in flight under one token, from its first attempt until
// it is won or given up. Each attempt may reach Redis even when its reply
// is lost or late; the next attempt is the same claim again (same token),
// which the claim script recognises by its own mark, so that a claim that
// won is never lost to a retry. Give a bid up with Withdraw. A Bid is not
// safe for concurrent use.
type Bid struct {
	lk    *Locker
	claim Claim
	token string
	lines lines
	sent  bool  // an attempt may have reached Redis (in quorum mode, some node: see reached)
	split error // the last lost split vote (quorum mode), while only attempts cut short (ErrCutShort) followed it
	// cut: an attempt got no answer (an I/O error, or an error that cut its
	// script short, such as a command the ACL refuses: Redis keeps a
	// script's writes before an error), so the lease key may hold this
	// bid's token with no mark; cutOn is the same per node in quorum mode
	// (see drop).
	cut   bool
	cutOn []bool
	// reached is, per node in quorum mode, whether an attempt's call to it
	// left this process (it was written, or the reply is unknown): only
	// there can the bid hold anything, so only there is it dropped or
	// withdrawn. A call dropped unsent from the queue, or whose connection
	// could not be dialled, reached nothing.
	reached []bool
}

// Bid prepares a claim under a new token; nothing is sent yet. It fails
// with ErrInvalid for a malformed claim.
func (l *Locker) Bid(c Claim) (*Bid, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	token := newToken()
	b := &Bid{lk: l, claim: c, token: token, lines: c.lines(token, len(l.nodes) == 1)}
	if len(l.nodes) > 1 {
		b.cutOn = make([]bool, len(l.nodes))
		b.reached = make([]bool, len(l.nodes))
	}
	return b, nil
}

// Token is the bid's token, which its lease keeps.
func (b *Bid) Token() string { return b.token }

// Sent reports whether an attempt may have reached Redis: then a bid that
// is given up must be withdrawn.
func (b *Bid) Sent() bool { return b.sent }

// Obtain makes one attempt (retrying ErrNotObtained without a Busy record
// and lost split votes up to Options.Retries times). On success the lease
// is held until Release, Finish or loss; unless Unwatched, a watchdog renews
// it every TTL/3 and the caller must end it with Release or Finish. The
// lease's context is derived from ctx's values but not its cancellation.
//
// Errors: a NotObtainedError wrapping ErrNotObtained, ErrSlotClaimed,
// ErrPaused, ErrEarly, ErrLate or ErrUnborn when state refused the claim
// (final, except ErrEarly, which may be retried after its Wait);
// otherwise an I/O error (joined with ctx.Err() when ctx ended the call),
// ErrNoQuorum or ErrTooLate: the claim may have won, so call Obtain again
// to retry it as itself, or Withdraw. Such an attempt may also have taken
// the lease and stopped before its mark (Redis keeps a script's writes
// before an error): the next attempt takes that lease as its own, and a
// final refusal (not ErrEarly) frees it, token-checked, on the nodes
// concerned.
func (b *Bid) Obtain(ctx context.Context) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		var lease *Lease
		var err error
		if len(b.lk.nodes) == 1 {
			lease, err = b.obtainSingle(ctx)
		} else {
			lease, err = b.obtainQuorum(ctx)
		}
		if err == nil {
			return lease, nil
		}
		if attempt >= b.lk.opts.Retries || !b.retryable(err) || ended(ctx, time.Now()) {
			return nil, fmt.Errorf("locker: obtain %q: %w", b.claim.Key, err)
		}
		t := time.NewTimer(mrand.N(b.lk.opts.RetryDelay) + 1)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("locker: obtain %q: %w", b.claim.Key, withCtx(ctx, err))
		case <-t.C:
		}
	}
}

// retryable says whether Obtain retries err itself after a random delay:
// a busy lease that recorded nothing, and a split vote, which this claim
// surely lost (its marks were dropped) unless an attempt cut short since
// (ErrCutShort; then it is retried as itself, marks and all).
func (b *Bid) retryable(err error) bool {
	if errors.Is(err, ErrSplitVote) {
		return true
	}
	return errors.Is(err, ErrNotObtained) && b.claim.Records.Busy == ""
}

// Withdraw gives the bid up: its lease key and successor key are deleted if
// they hold its token, and its own running mark, if an attempt wrote one,
// is ended with Records.Aborted, so that the slot stays claimed and on
// record (other replicas may have seen the claim win and left the slot; in
// quorum mode a record on nodes too few for the claim to have won is
// completed by the slot's skip on the others, see RecordSkips). It is a
// no-op when no attempt was sent, and safe to repeat; it returns the I/O
// error when Redis could not be told (the mark then stays until its TTL).
func (b *Bid) Withdraw(ctx context.Context) error {
	return b.withdraw(ctx, b.claim.Records.Aborted)
}

// withdraw is Withdraw ending the running mark with record.
func (b *Bid) withdraw(ctx context.Context, record string) error {
	if !b.sent {
		return nil
	}
	mode := markWithdraw
	if record == "" || b.claim.MarkKey == "" {
		mode = markKeep
	}
	line := b.claim.releaseLine(b.token, mode, record, 0)
	var err error
	if b.reached == nil {
		err = b.lk.each(ctx, releaseScript, line)
	} else {
		err = b.lk.eachReached(ctx, b.reached, releaseScript, line)
	}
	if err != nil {
		return fmt.Errorf("locker: withdraw %q: %w", b.claim.Key, err)
	}
	return nil
}

// Obtain claims c in one go: a Bid and its attempts (see Bid.Obtain and
// Options.Retries). When they fail after an attempt may have won, it
// withdraws the bid (see Bid.Withdraw), best effort, bounded by
// NodeTimeout. To retry a claim as itself across I/O errors instead, use a
// Bid.
func (l *Locker) Obtain(ctx context.Context, c Claim) (*Lease, error) {
	b, err := l.Bid(c)
	if err != nil {
		return nil, err
	}
	lease, err := b.Obtain(ctx)
	if err != nil && b.sent && !stateErr(err) {
		// The claim may have run even though we saw an error, and others
		// may have seen its running mark and given the slot up: undo the
		// lease, but keep the slot claimed and on record. The undo queues
		// behind the claim on each node, so it cannot overtake it.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.NodeTimeout)
		_ = b.Withdraw(wctx)
		cancel()
	}
	return lease, err
}

// obtainSingle is the single-node hot path: one EVALSHA, on the caller's
// goroutine unless other calls are in flight (then pipelined with them, or
// carried in their batch.lua call).
func (b *Bid) obtainSingle(ctx context.Context) (*Lease, error) {
	l := b.lk
	start := time.Now()
	cmd := redis.NewCmd(ctx, b.lines.obtain...)
	sent := b.sent
	b.sent = true
	ln := &l.nodes[0].lanes[laneMain]
	c := newCall(ctx, cmd, obtainScript, l.opts.NodeTimeout)
	if ln.ack.n > 0 {
		c.ack.want, c.timeout = true, l.opts.NodeTimeout+ln.ack.timeout
	}
	if err := ln.run(c); err != nil {
		if c.unsent() {
			b.sent = sent // this attempt never left the queue
			return nil, err
		}
		b.cut = true
		return nil, withCtx(ctx, err)
	}
	r, err := parseObtain(cmd.Val())
	if err != nil {
		return nil, err
	}
	if !r.ok() {
		err := r.err()
		if b.cut && !errors.Is(err, ErrEarly) {
			b.freeLease(ctx)
		}
		return nil, err
	}
	if err := c.acked(ln.ack); err != nil {
		b.unhold(ctx)
		return nil, withCtx(ctx, err)
	}
	lease := newLease(l, b, r.fence, start)
	lease.due = l.nodes[0].due.local(time.Now(), b.claim.Due.UnixMilli(), r.due)
	if r.code == replyWait {
		if err := lease.awaitPredecessor(ctx, r.pttl); err != nil {
			return nil, err
		}
	} else if !time.Now().Before(lease.deadline) {
		return nil, fmt.Errorf("%w: confirmed after %v", ErrTooLate, time.Since(start))
	}
	lease.start(ctx)
	return lease, nil
}

// freeLease deletes the lease key (and successor key) if an attempt of
// the bid that got no answer left them holding its token, once the claim
// is refused for good (the slot decided by others, the job paused, late):
// otherwise they would keep the job's lease busy until its TTL with
// nothing running. Its mark, if any, is left as it is. Best effort,
// bounded by NodeTimeout.
func (b *Bid) freeLease(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.lk.opts.NodeTimeout)
	defer cancel()
	if b.lk.each(ctx, releaseScript, b.claim.releaseLine(b.token, markKeep, "", 0)) == nil {
		b.cut = false
	}
}

// each runs the command line on every node (one node: the caller's
// goroutine) and succeeds when a majority answered; status replies that
// are errors of state are not I/O failures.
func (l *Locker) each(ctx context.Context, s *script, line []any) error {
	if len(l.nodes) == 1 {
		cmd := redis.NewCmd(ctx, line...)
		if err := l.nodes[0].lanes[laneMain].run(newCall(ctx, cmd, s, l.opts.NodeTimeout)); err != nil {
			return withCtx(ctx, err)
		}
		return nil
	}
	return l.eachReached(ctx, nil, s, line)
}

// eachReached runs line on the nodes that reached marks true (nil: every
// node; a quorum bid's nodes that its attempts reached) and needs answers
// from as many as a majority lacks once the other nodes are counted: never
// reached, they hold nothing of the bid, as if they had answered.
func (l *Locker) eachReached(ctx context.Context, reached []bool, s *script, line []any) error {
	var skip []bool
	ok := 0
	if reached != nil {
		skip = make([]bool, len(l.nodes))
		for i, r := range reached {
			if !r {
				skip[i] = true
				ok++
			}
		}
		if ok == len(l.nodes) {
			return nil
		}
	}
	rs := fanoutTo(ctx, l.nodes, skip, laneMain, prioNormal, l.opts.NodeTimeout, s, line, anyReply).all()
	for _, r := range rs {
		if r.err == nil {
			ok++
		}
	}
	if ok < l.quorum {
		return withCtx(ctx, fmt.Errorf("%w: %d of %d nodes answered (or were never reached): %w", ErrNoQuorum, ok, len(l.nodes), joinErrs(rs)))
	}
	return nil
}

// newToken returns 128 random bits in hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
