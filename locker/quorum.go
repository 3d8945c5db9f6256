package locker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodeResult is one node's answer to a fanned-out call.
type nodeResult[T any] struct {
	node int
	val  T
	err  error
}

// gather receives the results of a fan-out, one at a time.
type gather[T any] struct {
	ch      chan *call
	pending int
	parse   func(*redis.Cmd) (T, error)
	got     []nodeResult[T]
}

// fanout sends the command line to every node at once, each call bounded by
// timeout (and ctx), and pipelined with the other calls queued on its node
// (see node). It starts no goroutine per call: a node that is idle gets a
// flusher, which exits when its queue is empty. A caller that stops reading
// early leaves the rest to be delivered, within timeout, into a buffered
// channel. line is shared by the nodes' commands, read only.
func fanout[T any](ctx context.Context, nodes []*node, timeout time.Duration, s *script, line []any, parse func(*redis.Cmd) (T, error)) *gather[T] {
	return fanoutTo(ctx, nodes, nil, timeout, s, line, parse)
}

// fanoutTo is fanout to the nodes whose skip entry is false (all when skip
// is nil).
func fanoutTo[T any](ctx context.Context, nodes []*node, skip []bool, timeout time.Duration, s *script, line []any, parse func(*redis.Cmd) (T, error)) *gather[T] {
	g := &gather[T]{ch: make(chan *call, len(nodes)), parse: parse, got: make([]nodeResult[T], 0, len(nodes))}
	start := time.Now()
	for i, n := range nodes {
		if skip != nil && skip[i] {
			continue
		}
		c := newCall(ctx, redis.NewCmd(ctx, line...), s.src, start, timeout)
		c.node, c.done = i, g.ch
		g.pending++
		n.send(c)
	}
	return g
}

// next waits for one more result; false when all are in.
func (g *gather[T]) next() (nodeResult[T], bool) {
	if g.pending == 0 {
		return nodeResult[T]{}, false
	}
	c := <-g.ch
	g.pending--
	r := nodeResult[T]{node: c.node, err: c.cmd.Err()}
	if r.err == nil {
		r.val, r.err = g.parse(c.cmd)
	}
	g.got = append(g.got, r)
	return r, true
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
// majority of acks, and undo everything on failure.
func (l *Locker) obtainQuorum(ctx context.Context, c *Claim) (*Lease, error) {
	a := c.leaseArgs(newToken())
	s, line := c.obtainLine(&a)
	n := len(l.nodes)
	start := time.Now()
	validUntil := start.Add(c.TTL - l.opts.drift(c.TTL))

	g := fanout(ctx, l.nodes, l.opts.NodeTimeout, s, line, parseObtainCmd)
	ok, failed := 0, 0
	var fence int64
	for ok < l.quorum && failed <= n-l.quorum {
		r, _ := g.next()
		if r.err == nil && r.val.code == 0 {
			ok++
			fence = max(fence, r.val.fence)
		} else {
			failed++
		}
	}

	var err error
	switch {
	case ok < l.quorum:
		err = fmt.Errorf("%w: %d of %d nodes claimed, need %d", ErrNoQuorum, ok, n, l.quorum)
	case !time.Now().Before(validUntil):
		err = fmt.Errorf("%w: %w: validity used up after %v", ErrNoQuorum, ErrTooLate, time.Since(start))
	default:
		if err = l.writeFence(ctx, c.FenceKey, fence, g.got); err == nil && !time.Now().Before(validUntil) {
			err = fmt.Errorf("%w: %w: validity used up after %v", ErrNoQuorum, ErrTooLate, time.Since(start))
		}
	}
	if err == nil {
		lease := newLease(l, c, fence, start, a)
		lease.claims = g
		lease.start(ctx)
		return lease, nil
	}

	// Failure: wait for the slow claims (bounded by NodeTimeout) so that none
	// lands after the undo, then undo on every node.
	rs := g.all()
	l.abortAll(&a, mayHaveWon(rs, l.quorum))
	if state, refused := stateErr(rs); refused > n-l.quorum {
		err = state // state alone made a majority impossible
	} else if ioErr := joinErrs(rs); ioErr != nil {
		err = fmt.Errorf("%w: %w", err, ioErr)
	}
	return nil, fmt.Errorf("locker: obtain %q: %w", c.Key, withCtx(ctx, err))
}

// stateErr picks the state refusal that most nodes gave, if any, and counts
// the refusals.
func stateErr(rs []nodeResult[obtainReply]) (best *NotObtainedError, refused int) {
	var count [codeBusy + 1]int
	// A slot counts as claimed only as far as one claimant's running marks,
	// plus final records, go: running marks of several claimants that split
	// the vote do not make the slot taken, since all of them will undo.
	perToken := map[string]int{}
	top := 0
	for _, r := range rs {
		if r.err != nil || r.val.code < codePaused || r.val.code > codeBusy {
			continue
		}
		if r.val.code == codeClaimed && strings.HasPrefix(r.val.record, RunningPrefix) {
			tok, _, _ := strings.Cut(strings.TrimPrefix(r.val.record, RunningPrefix), ":")
			perToken[tok]++
			if perToken[tok] <= top {
				continue
			}
			top = perToken[tok]
		}
		refused++
		count[r.val.code]++
		if best == nil || count[r.val.code] > count[bestCode(best)] {
			best = r.val.err()
		}
	}
	return best, refused
}

func bestCode(e *NotObtainedError) int64 {
	switch e.Reason {
	case ErrPaused:
		return codePaused
	case ErrSlotClaimed:
		return codeClaimed
	}
	return codeBusy
}

// writeFence makes sure that a majority of nodes have the fence counter at
// f or above. The nodes whose claim INCR already returned f have it (the
// common case: then no write is needed); the counter is raised to f on the
// others, and Obtain waits for as many acknowledgements as the majority
// still lacks.
func (l *Locker) writeFence(ctx context.Context, key string, f int64, claims []nodeResult[obtainReply]) error {
	n := len(l.nodes)
	have := 0
	skip := make([]bool, n)
	for _, r := range claims {
		if r.err == nil && r.val.code == 0 && r.val.fence == f {
			have++
			skip[r.node] = true
		}
	}
	if have >= l.quorum {
		return nil
	}
	g := fanoutTo(ctx, l.nodes, skip, l.opts.NodeTimeout, fenceScript, fenceScript.line(1, key, strconv.FormatInt(f, 10)), int64Reply)
	ok, failed, others := have, 0, g.pending
	for ok < l.quorum && failed <= others-(l.quorum-have) {
		r, _ := g.next()
		if r.err == nil && r.val >= f {
			ok++
		} else {
			failed++
		}
	}
	if ok < l.quorum {
		return fmt.Errorf("%w: fence %d on %d of %d nodes: %w", ErrNoQuorum, f, ok, n, joinErrs(g.got))
	}
	return nil
}

// abortAll deletes the lease key and the running mark holding the lease's
// token on every node; best effort, bounded by NodeTimeout.
func (l *Locker) abortAll(a *leaseArgs, mayHaveWon bool) {
	mode := markDrop
	if mayHaveWon {
		mode = markAbort
	}
	fanout(context.Background(), l.nodes, l.opts.NodeTimeout, releaseScript, a.releaseLine(mode), int64Reply).all()
}

// mayHaveWon reports whether a failed claim's running marks may stand on a
// majority (claimed, or unknown after an I/O error): other claimants may then
// have taken the slot as won and given it up, so the undo must keep it
// claimed (SkippedAborted). A claim that surely lost the vote deletes its
// marks instead, so that a retry after a split vote can win.
func mayHaveWon(rs []nodeResult[obtainReply], quorum int) bool {
	maybe := 0
	for _, r := range rs {
		if (r.err == nil && r.val.code == 0) || (r.err != nil && !neverSent(r.err)) {
			maybe++
		}
	}
	return maybe >= quorum
}

// neverSent reports an error that proves the command never reached the
// node: the connection could not even be dialled.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// tally counts renew/release statuses.
type tally struct{ held, expired, taken, failed int }

func (t *tally) add(s int64, err error) {
	switch {
	case err != nil:
		t.failed++
	case s == statusHeld:
		t.held++
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
func (l *Lease) renewQuorum(ctx context.Context, timeout time.Duration, start time.Time) error {
	lk := l.lk
	n := len(lk.nodes)
	g := fanout(ctx, lk.nodes, timeout, renewScript, l.args.renewLine(), int64Reply)
	var t tally
	for t.held < lk.quorum && t.held+n-len(g.got) >= lk.quorum {
		r, _ := g.next()
		t.add(r.val, r.err)
	}
	switch {
	case t.held >= lk.quorum:
		if time.Since(start) >= l.claim.TTL-l.drift {
			return fmt.Errorf("%w: renewal validity used up after %v", ErrNoQuorum, time.Since(start))
		}
		return nil
	case l.ctx.Err() != nil:
		return context.Cause(l.ctx)
	case t.gone(n, lk.quorum):
		err := t.reason()
		l.lose("renewal", fmt.Errorf("%w (expired on %d, taken on %d, of %d nodes)", err, t.expired, t.taken, n))
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return withCtx(ctx, fmt.Errorf("%w: %d of %d nodes renewed: %w", ErrNoQuorum, t.held, n, joinErrs(g.got)))
}

// releaseQuorum compare-and-deletes on every node and waits for all, each
// bounded by NodeTimeout.
func (l *Lease) releaseQuorum(ctx context.Context) error {
	lk := l.lk
	rs := fanout(ctx, lk.nodes, lk.opts.NodeTimeout, releaseScript, l.args.releaseLine(markKeep), int64Reply).all()
	var t tally
	for _, r := range rs {
		t.add(r.val, r.err)
	}
	return l.verdict(ctx, &t, joinErrs(rs), nil)
}

// verdict turns a tally of all nodes into Release's or Finish's error.
func (l *Lease) verdict(ctx context.Context, t *tally, ioErr error, wrap func(error) error) error {
	n, q := len(l.lk.nodes), l.lk.quorum
	if wrap == nil {
		wrap = func(e error) error { return e }
	}
	switch {
	case t.held >= q:
		return nil
	case t.expired+t.taken > 0 && t.held+t.failed < q:
		return wrap(t.reason())
	}
	return withCtx(ctx, fmt.Errorf("%w: %d of %d nodes held the lease: %w", ErrNoQuorum, t.held, n, ioErr))
}

// finishQuorum runs finish.lua on every node and waits for all.
func (l *Lease) finishQuorum(ctx context.Context, line []any) error {
	lk := l.lk
	type fin struct {
		status   int64
		recorded bool
	}
	rs := fanout(ctx, lk.nodes, lk.opts.NodeTimeout, finishScript, line, func(cmd *redis.Cmd) (fin, error) {
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
