package locker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodeResult is one node's answer to a fanned-out call.
type nodeResult[T any] struct {
	node int
	val  T
	err  error
	cut  bool // its context, not the node, ended the call (see call.cutByCtx)
}

// gather receives the results of a fan-out, one at a time.
type gather[T any] struct {
	ch      chan *call
	pending int
	parse   func(*redis.Cmd) (T, error)
	got     []nodeResult[T]
	// done is the calls' context's Done; calls are the calls by node whose
	// result is not in yet (nil: not sent there, or answered).
	done  <-chan struct{}
	calls []*call
}

// fanout sends the command line to every node at once, in the given lane,
// each call bounded by timeout (and ctx), and pipelined with the other
// calls queued on its node (see lane). It starts no goroutine per call: a
// lane that is idle gets a flusher, which exits when its queue is empty. A
// caller that stops reading early leaves the rest to be delivered, within
// timeout, into a buffered channel. line is shared by the nodes' commands,
// read only.
func fanout[T any](ctx context.Context, nodes []*node, ln int, timeout time.Duration, s *script, line []any, parse func(*redis.Cmd) (T, error)) *gather[T] {
	return fanoutTo(ctx, nodes, nil, ln, prioNormal, timeout, s, line, parse)
}

// fanoutTo is fanout to the nodes whose skip entry is false (all when skip
// is nil), its calls queued with priority pr.
func fanoutTo[T any](ctx context.Context, nodes []*node, skip []bool, ln int, pr priority, timeout time.Duration, s *script, line []any, parse func(*redis.Cmd) (T, error)) *gather[T] {
	g := &gather[T]{ch: make(chan *call, len(nodes)), parse: parse, got: make([]nodeResult[T], 0, len(nodes)),
		done: ctx.Done(), calls: make([]*call, len(nodes))}
	for i, n := range nodes {
		if skip != nil && skip[i] {
			continue
		}
		c := newCall(ctx, redis.NewCmd(ctx, line...), s, timeout)
		c.node, c.done, c.prio = i, g.ch, pr
		g.calls[i] = c
		g.pending++
		n.lanes[ln].send(c)
	}
	return g
}

// next waits for one more result; false when all are in. Once the calls'
// context ends, a call still queued in this process is dropped unsent at
// once (ErrNotSent), as lane.run does, rather than when its lane gets to
// it: behind a reply that is held, that may be NodeTimeout later.
func (g *gather[T]) next() (nodeResult[T], bool) {
	if g.pending == 0 {
		return nodeResult[T]{}, false
	}
	var c *call
	for c == nil {
		select {
		case c = <-g.ch:
		case <-g.done:
			if r, ok := g.dropQueued(); ok {
				return r, true
			}
			g.done = nil // every call left was written: wait for them
			continue
		}
		if g.calls[c.node] != c {
			c = nil // dropped unsent here, delivered by its lane since
		}
	}
	g.pending--
	g.calls[c.node] = nil
	r := nodeResult[T]{node: c.node, err: c.cmd.Err(), cut: c.cutByCtx()}
	if r.err == nil {
		r.val, r.err = g.parse(c.cmd)
	}
	g.got = append(g.got, r)
	return r, true
}

// dropQueued drops a call not yet written, as its context ended, and
// returns its result; false when every call left was written.
func (g *gather[T]) dropQueued() (nodeResult[T], bool) {
	for i, c := range g.calls {
		if c == nil || !c.state.CompareAndSwap(callQueued, callUnsent) {
			continue
		}
		g.pending--
		g.calls[i] = nil
		r := nodeResult[T]{node: i, err: notSent(c.ctx), cut: true}
		g.got = append(g.got, r)
		return r, true
	}
	return nodeResult[T]{}, false
}

// all waits for every remaining result.
func (g *gather[T]) all() []nodeResult[T] {
	for {
		if _, ok := g.next(); !ok {
			return g.got
		}
	}
}

func parseObtainCmd(cmd *redis.Cmd) (obtainReply, error) { return parseObtain(cmd.Val()) }

func int64Reply(cmd *redis.Cmd) (int64, error) { return cmd.Int64() }

func textReply(cmd *redis.Cmd) (string, error) { return cmd.Text() }

func anyReply(cmd *redis.Cmd) (any, error) { return cmd.Val(), nil }

// joinErrs joins the I/O errors of results, naming their nodes.
func joinErrs[T any](rs []nodeResult[T]) error {
	var errs []error
	for _, r := range rs {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", r.node, r.err))
		}
	}
	return errors.Join(errs...)
}

// obtainQuorum is Redlock: claim on every node, succeed on a majority within
// the validity, raise every fence counter to the majority's maximum with a
// majority of acks. A claim that surely lost drops its marks on every node;
// one that may have won is kept, for a retry as itself or a Withdraw.
func (b *Bid) obtainQuorum(ctx context.Context) (*Lease, error) {
	l := b.lk
	c := &b.claim
	n := len(l.nodes)
	start := time.Now()
	validUntil := start.Add(c.TTL - l.opts.drift(c.TTL))

	split := b.split // the last lost split vote, if only cut attempts followed it
	b.split = nil
	g := fanout(ctx, l.nodes, laneMain, l.opts.NodeTimeout, obtainScript, b.lines.obtain, parseObtainCmd)
	ok, failed := 0, 0
	var fence, pttl int64
	var due time.Time // the latest of the granting nodes' Lease.Due
	wait := false
	for ok < l.quorum && failed <= n-l.quorum {
		r, _ := g.next()
		if r.err == nil && r.val.ok() {
			ok++
			fence = max(fence, r.val.fence)
			if d := l.nodes[r.node].due.local(time.Now(), c.Due.UnixMilli(), r.val.due); d.After(due) {
				due = d
			}
			if r.val.code == replyWait {
				wait, pttl = true, max(pttl, r.val.pttl)
			}
		} else {
			failed++
		}
	}

	var err error
	switch {
	case ok < l.quorum:
		err = fmt.Errorf("%w: %d of %d nodes claimed, need %d", ErrNoQuorum, ok, n, l.quorum)
	case !wait && !time.Now().Before(validUntil):
		err = fmt.Errorf("%w: %w: validity used up after %v", ErrNoQuorum, ErrTooLate, time.Since(start))
	case wait:
		// A waiting claim's numbers are not its fence: its takes take new
		// ones, and write their maximum back (Lease.take).
	default:
		if err = b.writeFence(ctx, fence, g.got); err == nil && !time.Now().Before(validUntil) {
			err = fmt.Errorf("%w: %w: validity used up after %v", ErrNoQuorum, ErrTooLate, time.Since(start))
		}
	}
	if err == nil {
		b.reach(nil) // the claims not yet read count as reached
		lease := newLease(l, b, fence, start)
		lease.due = due
		if wait {
			g.all() // every claim answered before the take rounds begin
			if err := lease.awaitPredecessor(ctx, pttl); err != nil {
				return nil, err
			}
		} else {
			lease.claims = g
		}
		lease.start(ctx)
		return lease, nil
	}

	// Failure: wait for the slow claims (bounded by NodeTimeout), then look
	// at every answer.
	rs := g.all()
	b.reach(rs)
	for _, r := range rs {
		if r.err != nil && b.reached[r.node] {
			b.cutOn[r.node] = true // its script may have stopped after taking the lease
		}
	}
	if state, decided := quorumRefusal(rs, n, l.quorum, &b.claim); decided {
		// Others decided the slot: our running marks, if any, stand on a
		// minority.
		b.drop(rs)
		return nil, state
	}
	won := mayHaveWon(rs, b.reached, l.quorum)
	if !won {
		// A split vote, or too few nodes answered to win: drop our marks so
		// that a retry (ours or another claimant's) can win. When other
		// claims hold votes it is a split vote, even with nodes down (2 of
		// 5 masters dead leave 3 votes to split): Bid.Obtain retries it
		// after a random delay, as Redlock does.
		b.drop(rs)
	}
	lost := !won && splitWith(rs)
	if lost {
		err = fmt.Errorf("%w: %w", err, ErrSplitVote)
	}
	if ioErr := joinErrs(rs); ioErr != nil {
		err = fmt.Errorf("%w: %w", err, ioErr)
	}
	switch {
	case lost:
		b.split = err
	case split != nil && cutShort(rs, n, l.quorum):
		// This attempt's context ended before the nodes' answers were all
		// in (it waited in this replica's queue, or its replies were late,
		// on a starved host): it learned nothing new about the vote, and
		// the bid's last answer, a lost split vote, still stands. Its
		// marks are kept where they may have won (all of them, unless too
		// few nodes could have granted them: see above), for a retry or
		// Withdraw.
		b.split = split
		return nil, errors.Join(split, withCtx(ctx, fmt.Errorf("%w: %w", ErrCutShort, err)))
	}
	return nil, withCtx(ctx, err)
}

// reach notes the nodes that an attempt's calls reached (see
// Bid.reached): those answered, or failed after they were written. Nil rs
// is every node (a claim that won, whose replies may not all be read).
func (b *Bid) reach(rs []nodeResult[obtainReply]) {
	if rs == nil {
		for i := range b.reached {
			b.reached[i] = true
		}
	}
	for _, r := range rs {
		if r.err == nil || !errors.Is(r.err, ErrNotSent) && !neverSent(r.err) {
			b.reached[r.node] = true
		}
	}
	b.sent = slices.Contains(b.reached, true)
}

// drop deletes the bid's running marks (restoring each node's high-water)
// and lease keys on the nodes where its claim won, or where an attempt of
// it got no answer (cutOn); best effort, bounded by NodeTimeout.
func (b *Bid) drop(rs []nodeResult[obtainReply]) {
	l := b.lk
	skip := make([]bool, len(l.nodes))
	any := false
	for i := range skip {
		skip[i] = !b.cutOn[i]
		any = any || b.cutOn[i]
	}
	for _, r := range rs {
		if r.val.ok() || r.err != nil && b.reached[r.node] {
			skip[r.node], any = false, true
		}
	}
	if !any {
		return
	}
	line := b.claim.releaseLine(b.token, markDrop, "", 0)
	fanoutTo(context.Background(), l.nodes, skip, laneMain, prioNormal, l.opts.NodeTimeout, releaseScript, line, textReply).all()
}

// quorumRefusal tells whether the refusals of a failed quorum claim c
// decide the slot: either the nodes that refuse every claimant (a final
// record or high-water, pause, a busy lease, a clock bound) leave too few
// nodes for any majority, or another claimant's running marks stand on a
// majority (it won). Otherwise nobody has won: the claimants split the
// vote, and the losers drop their marks so that a retry can win. best is
// the refusal to report when decided: one that this claim recorded when
// its records make the majority (so that the replica counts the skip),
// else the most common. Unless the slot's final record (one this claim
// wrote, or one it found) stands on a majority, an early refusal (the
// longest wait) comes first: the claim is sent again once it is due, and
// the nodes that said early decide then. Otherwise, when the record
// stands on some nodes but fewer than a majority (mixed refusals) and the
// slot is not before the job's first sight on a majority, best is a
// refusal that holds the record, marked Minority.
func quorumRefusal(rs []nodeResult[obtainReply], n, quorum int, c *Claim) (best *NotObtainedError, decided bool) {
	count := map[string]int{}
	perToken := map[string]int{}
	blockAll, top := 0, 0
	records, found := 0, 0                     // nodes where the slot now has a final record; of them, found before
	var onRecord, own, early *NotObtainedError // a refusal that holds one; one this claim wrote; the longest early one
	for _, r := range rs {
		if r.err != nil || r.val.ok() {
			continue
		}
		if r.val.code == replyClaimed && r.val.token != "" && r.val.record == "" {
			perToken[r.val.token]++
			top = max(top, perToken[r.val.token])
			continue
		}
		blockAll++
		count[r.val.code]++
		e := r.val.err()
		if best == nil || count[r.val.code] > count[codeOf(best)] {
			best = e
		}
		wrote, isFound := c.records(r.val.code), r.val.code == replyClaimed && r.val.record != ""
		if wrote || isFound {
			records++
			onRecord = cmp.Or(onRecord, e)
		}
		if wrote {
			own = cmp.Or(own, e)
		}
		if isFound {
			found++
		}
		if r.val.code == replyEarly && (early == nil || e.Wait > early.Wait) {
			early = e
		}
	}
	switch {
	case top >= quorum:
		return &NotObtainedError{Reason: ErrSlotClaimed}, true
	case blockAll <= n-quorum:
		return nil, false
	case records >= quorum && own != nil && found < quorum:
		return own, true // its own records make the majority: its skip
	case records >= quorum:
		return best, true
	case early != nil:
		return early, true
	case count[replyUnborn] >= quorum || records == 0:
		return best, true
	}
	onRecord.Minority = true
	return onRecord, true
}

// codeOf is the reply code of a refusal.
func codeOf(e *NotObtainedError) string {
	switch e.Reason {
	case ErrPaused:
		return replyPaused
	case ErrSlotClaimed:
		return replyClaimed
	case ErrEarly:
		return replyEarly
	case ErrLate:
		return replyLate
	case ErrUnborn:
		return replyUnborn
	}
	return replyBusy
}

// writeFence makes sure that a majority of nodes have the bid's fence
// counter at f or above. The nodes whose claim already returned f have it
// (the common case: then no write is needed); the counter is raised to f
// on the others, and the claim waits for as many acknowledgements as the
// majority still lacks. A node acknowledges when the write-back raised its
// counter, or when the bid holds the lease there (fence.lua): no other
// claim takes a number there meanwhile that it can run with (a replace
// claim waiting there takes one, but takes a new one as it takes the lease
// over), so a counter at f or above is the bid's own increment or another
// claim's raise. A node where another claim took f or more without it does
// not: that claim may hold f itself, and win with it once this lease
// expired.
func (b *Bid) writeFence(ctx context.Context, f int64, claims []nodeResult[obtainReply]) error {
	l := b.lk
	n := len(l.nodes)
	have := 0
	skip := make([]bool, n)
	for _, r := range claims {
		if r.err == nil && r.val.ok() && r.val.fence == f {
			have++
			skip[r.node] = true
		}
	}
	if have >= l.quorum {
		return nil
	}
	a := fenceScript.args()
	a.key("meta", b.claim.MetaKey).key("lease", b.claim.Key).arg("fence", strconv.FormatInt(f, 10)).arg("token", b.token)
	g := fanoutTo(ctx, l.nodes, skip, laneMain, prioNormal, l.opts.NodeTimeout, fenceScript, a.line(), int64Reply)
	ok, failed, others := have, 0, g.pending
	for ok < l.quorum && failed <= others-(l.quorum-have) {
		r, _ := g.next()
		if r.err == nil && r.val == 1 {
			ok++
		} else {
			failed++
		}
	}
	if ok < l.quorum {
		return errors.Join(fmt.Errorf("%w: fence %d on %d of %d nodes by this claim", ErrNoQuorum, f, ok, n), joinErrs(g.got))
	}
	return nil
}

// mayHaveWon reports whether a failed claim's running marks may stand on a
// majority (claimed, or unknown after an I/O error on a node that an
// attempt of the bid reached): other claimants may then have taken the
// slot as won and given it up, so the claim must be kept (retried as
// itself, or withdrawn with a record). A claim that surely lost the vote
// drops its marks instead, so that a retry can win.
func mayHaveWon(rs []nodeResult[obtainReply], reached []bool, quorum int) bool {
	maybe := 0
	for _, r := range rs {
		if (r.err == nil && r.val.ok()) || (r.err != nil && reached[r.node]) {
			maybe++
		}
	}
	return maybe >= quorum
}

// splitWith reports whether some node refused the claim because another
// claim of the same slot, still running, holds it there: a vote for
// another claimant.
func splitWith(rs []nodeResult[obtainReply]) bool {
	for _, r := range rs {
		if r.err == nil && r.val.code == replyClaimed && r.val.token != "" && r.val.record == "" {
			return true
		}
	}
	return false
}

// neverSent reports an error that proves the command never reached the
// node: the connection could not even be dialled. A call dropped unsent
// from this process's queue (ErrNotSent) did not reach the node either
// (see Bid.reach), but cutShort tells the two apart.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// cutShort reports whether a claim attempt was cut short by its context:
// some node's call was ended by the context (dropped unsent, or its reply
// not in by the context's deadline; see call.cutByCtx), every other node
// answered or could not be dialled, and the nodes that could be dialled
// could make a majority. A node that ran out its own NodeTimeout, or too
// many nodes down, are an outage.
func cutShort(rs []nodeResult[obtainReply], n, quorum int) bool {
	cut, down := false, 0
	for _, r := range rs {
		switch {
		case r.err == nil:
		case neverSent(r.err): // also a dial that the context ended
			down++
		case r.cut:
			cut = true
		default:
			return false // a fault of its own (a timeout, a reset, an error reply)
		}
	}
	return cut && down <= n-quorum
}

// tally counts renew/release statuses.
type tally struct{ held, expired, taken, failed, replaced int }

func (t *tally) add(s string, err error) {
	switch {
	case err != nil:
		t.failed++
	case s == statusHeld || s == statusDone:
		t.held++
	case s == statusReplaced:
		t.held++
		t.replaced++
	case s == statusExpired:
		t.expired++
	case s == statusTaken:
		t.taken++
	default:
		t.failed++
	}
}

// gone says whether so many nodes lack the key that no majority can hold it.
func (t *tally) gone(n, quorum int) bool { return n-t.expired-t.taken < quorum }

// reason is ErrLeaseTaken or ErrLeaseExpired, whichever more nodes gave.
func (t *tally) reason() error {
	if t.taken > 0 && t.taken >= t.expired {
		return ErrLeaseTaken
	}
	return ErrLeaseExpired
}

// renewQuorum extends the lease on every node and needs a majority within
// the validity; the rest finish in the background.
func (l *Lease) renewQuorum(ctx context.Context, timeout time.Duration, start time.Time) (string, error) {
	lk := l.lk
	n := len(lk.nodes)
	g := fanout(ctx, lk.nodes, laneRenew, timeout, renewScript, l.bid.lines.renew, textReply)
	var t tally
	for t.held < lk.quorum && t.held+n-len(g.got) >= lk.quorum {
		r, _ := g.next()
		t.add(r.val, r.err)
	}
	switch {
	case t.held >= lk.quorum:
		if time.Since(start) >= l.bid.claim.TTL-l.drift {
			return "", fmt.Errorf("%w: renewal validity used up after %v", ErrNoQuorum, time.Since(start))
		}
		if t.replaced > 0 {
			return statusReplaced, nil
		}
		return statusHeld, nil
	case l.hold.Err() != nil:
		return "", context.Cause(l.hold)
	case t.gone(n, lk.quorum):
		err := t.reason()
		l.lose("renewal", fmt.Errorf("%w (expired on %d, taken on %d, of %d nodes)", err, t.expired, t.taken, n))
		return "", fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return "", withCtx(ctx, fmt.Errorf("%w: %d of %d nodes renewed: %w", ErrNoQuorum, t.held, n, joinErrs(g.got)))
}

// releaseQuorum compare-and-deletes on every node and waits for all, each
// bounded by NodeTimeout.
func (l *Lease) releaseQuorum(ctx context.Context, line []any) error {
	lk := l.lk
	rs := fanout(ctx, lk.nodes, laneMain, lk.opts.NodeTimeout, releaseScript, line, textReply).all()
	var t tally
	for _, r := range rs {
		t.add(r.val, r.err)
	}
	return l.verdict(ctx, &t, joinErrs(rs), nil)
}

// verdict turns a tally of all nodes into Release's or Finish's error;
// errors of state are final (see retry).
func (l *Lease) verdict(ctx context.Context, t *tally, ioErr error, wrap func(error) error) error {
	n, q := len(l.lk.nodes), l.lk.quorum
	if wrap == nil {
		wrap = func(e error) error { return e }
	}
	switch {
	case t.held >= q:
		return nil
	case t.expired+t.taken > 0 && t.held+t.failed < q:
		return final{wrap(t.reason())}
	}
	return withCtx(ctx, fmt.Errorf("%w: %d of %d nodes held the lease: %w", ErrNoQuorum, t.held, n, ioErr))
}

// finishQuorum runs finish.lua on every node and waits for all.
func (l *Lease) finishQuorum(ctx context.Context, line []any) error {
	lk := l.lk
	type fin struct {
		status   string
		recorded bool
	}
	rs := fanout(ctx, lk.nodes, laneMain, lk.opts.NodeTimeout, finishScript, line, func(cmd *redis.Cmd) (fin, error) {
		s, rec, err := parseFinish(cmd.Val())
		return fin{s, rec}, err
	}).all()
	var t tally
	recorded := 0
	var ioErrs []error
	for _, r := range rs {
		t.add(r.val.status, r.err)
		if r.err == nil && r.val.recorded {
			recorded++
		}
		if r.err != nil {
			ioErrs = append(ioErrs, fmt.Errorf("node %d: %w", r.node, r.err))
		}
	}
	return l.verdict(ctx, &t, errors.Join(ioErrs...), func(e error) error {
		return &FinishError{Reason: e, Recorded: recorded >= lk.quorum}
	})
}
