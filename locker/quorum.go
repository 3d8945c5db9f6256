package locker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	ch      chan nodeResult[T]
	pending int
	got     []nodeResult[T]
}

// fanout calls fn on every client in parallel, each call bounded by timeout
// (and ctx). Each goroutine exits when its call returns; a caller that stops
// reading early leaves the rest to finish on their own, within timeout, into
// a buffered channel.
func fanout[T any](ctx context.Context, clients []redis.UniversalClient, timeout time.Duration, fn func(context.Context, redis.UniversalClient) (T, error)) *gather[T] {
	g := &gather[T]{ch: make(chan nodeResult[T], len(clients)), pending: len(clients), got: make([]nodeResult[T], 0, len(clients))}
	for i, c := range clients {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			v, err := fn(cctx, c)
			cancel()
			g.ch <- nodeResult[T]{node: i, val: v, err: err}
		}()
	}
	return g
}

// next waits for one more result; false when all are in.
func (g *gather[T]) next() (nodeResult[T], bool) {
	if g.pending == 0 {
		return nodeResult[T]{}, false
	}
	r := <-g.ch
	g.pending--
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
	token := newToken()
	keys, args := c.obtainArgs(token)
	n := len(l.clients)
	start := time.Now()
	validUntil := start.Add(c.TTL - l.opts.drift(c.TTL))

	g := fanout(ctx, l.clients, l.opts.NodeTimeout, func(ctx context.Context, cl redis.UniversalClient) (obtainReply, error) {
		v, err := obtainScript.Run(ctx, cl, keys, args...).Result()
		if err != nil {
			return obtainReply{}, err
		}
		return parseObtain(v)
	})
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
		err = fmt.Errorf("%w: validity used up after %v", ErrNoQuorum, time.Since(start))
	default:
		if err = l.writeFence(ctx, c.FenceKey, fence); err == nil && !time.Now().Before(validUntil) {
			err = fmt.Errorf("%w: validity used up after %v", ErrNoQuorum, time.Since(start))
		}
	}
	if err == nil {
		lease := newLease(l, c, fence, start, keys, args)
		lease.claims = g
		lease.start(ctx)
		return lease, nil
	}

	// Failure: wait for the slow claims (bounded by NodeTimeout) so that none
	// lands after the undo, then undo on every node.
	rs := g.all()
	l.abortAll(c, token)
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
	for _, r := range rs {
		if r.err != nil || r.val.code < codePaused || r.val.code > codeBusy {
			continue
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

// writeFence raises the fence counter to at least f on every node and waits
// for a majority of acknowledgements.
func (l *Locker) writeFence(ctx context.Context, key string, f int64) error {
	keys, arg := []string{key}, strconv.FormatInt(f, 10)
	g := fanout(ctx, l.clients, l.opts.NodeTimeout, func(ctx context.Context, cl redis.UniversalClient) (int64, error) {
		return fenceScript.Run(ctx, cl, keys, arg).Int64()
	})
	n, ok, failed := len(l.clients), 0, 0
	for ok < l.quorum && failed <= n-l.quorum {
		r, _ := g.next()
		if r.err == nil && r.val >= f {
			ok++
		} else {
			failed++
		}
	}
	if ok < l.quorum {
		return fmt.Errorf("%w: fence %d written on %d of %d nodes: %w", ErrNoQuorum, f, ok, n, joinErrs(g.got))
	}
	return nil
}

// abortAll deletes the lease key and the running mark holding token on every
// node; best effort, bounded by NodeTimeout.
func (l *Locker) abortAll(c *Claim, token string) {
	keys := []string{c.Key, c.orKey(c.MarkKey)}
	fanout(context.Background(), l.clients, l.opts.NodeTimeout, func(ctx context.Context, cl redis.UniversalClient) (int64, error) {
		return releaseScript.Run(ctx, cl, keys, token, argTrue).Int64()
	}).all()
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
	n := len(lk.clients)
	g := fanout(ctx, lk.clients, timeout, func(ctx context.Context, cl redis.UniversalClient) (int64, error) {
		return renewScript.Run(ctx, cl, l.renewKeys, l.renewArgs...).Int64()
	})
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
	rs := fanout(ctx, lk.clients, lk.opts.NodeTimeout, func(ctx context.Context, cl redis.UniversalClient) (int64, error) {
		return releaseScript.Run(ctx, cl, l.renewKeys, l.renewArgs[0], argFalse).Int64()
	}).all()
	var t tally
	for _, r := range rs {
		t.add(r.val, r.err)
	}
	return l.verdict(ctx, &t, joinErrs(rs), nil)
}

// verdict turns a tally of all nodes into Release's or Finish's error.
func (l *Lease) verdict(ctx context.Context, t *tally, ioErr error, wrap func(error) error) error {
	n, q := len(l.lk.clients), l.lk.quorum
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
func (l *Lease) finishQuorum(ctx context.Context, keys []string, args []any) error {
	lk := l.lk
	type fin struct {
		status   int64
		recorded bool
	}
	rs := fanout(ctx, lk.clients, lk.opts.NodeTimeout, func(ctx context.Context, cl redis.UniversalClient) (fin, error) {
		v, err := finishScript.Run(ctx, cl, keys, args...).Result()
		if err != nil {
			return fin{}, err
		}
		s, rec, err := parseFinish(v)
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
