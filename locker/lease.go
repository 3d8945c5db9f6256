package locker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is a held claim. Its methods are safe for concurrent use. A watched
// lease must be ended with Release or Finish (or be lost); until then its
// watchdog goroutine runs.
type Lease struct {
	lk    *Locker
	claim Claim
	token string
	fence int64
	drift time.Duration

	// args are the lease's script arguments, boxed once.
	args leaseArgs

	ctx    context.Context
	cancel context.CancelCauseFunc

	opMu sync.Mutex // serialises round trips: renewals never overlap

	mu       sync.Mutex
	deadline time.Time   // monotonic; moved by each successful renewal
	timer    *time.Timer // fires at deadline (watched leases only)
	wd       *watchdog   // nil when unwatched or stopped
	// claims are the quorum claims still in flight when Obtain returned;
	// ending the lease waits for them, so none lands after the release.
	claims *gather[obtainReply]
}

// newLease makes the lease of a successful claim sent at start with args.
func newLease(lk *Locker, c *Claim, fence int64, start time.Time, args leaseArgs) *Lease {
	drift := lk.opts.drift(c.TTL)
	return &Lease{
		lk:       lk,
		claim:    *c,
		token:    args.token.(string),
		fence:    fence,
		drift:    drift,
		deadline: start.Add(c.TTL - drift),
		args:     args,
	}
}

// start makes the lease's context, from obtainCtx's values but not its
// cancellation, and starts the watchdog of a watched lease.
func (l *Lease) start(obtainCtx context.Context) {
	l.ctx, l.cancel = context.WithCancelCause(context.WithoutCancel(obtainCtx))
	if l.claim.Unwatched {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = time.AfterFunc(time.Until(l.deadline), l.expire)
	l.wd = startWatchdog(l)
}

// expire runs at the local deadline of a watched lease.
func (l *Lease) expire() {
	l.lose("deadline", nil)
}

// lose cancels the lease with ErrLeaseLost and logs why ("deadline" or
// "renewal", with the renewal's finding as err).
func (l *Lease) lose(why string, err error) {
	if l.ctx.Err() != nil {
		return
	}
	l.cancel(ErrLeaseLost)
	l.lk.opts.Logger.Warn().Str("key", l.claim.Key).Int64("fence", l.fence).Str("reason", why).Err(err).Msg("lease lost")
}

// Key is the lease key.
func (l *Lease) Key() string { return l.claim.Key }

// Token is the lease's 128-bit random token, in hex.
func (l *Lease) Token() string { return l.token }

// Fence is the lease's fencing number: strictly greater than the fence of
// every earlier lease on the same FenceKey (single node, as long as the
// counter survives; see NewQuorum for the promise in quorum mode).
func (l *Lease) Fence() int64 { return l.fence }

// Deadline is the local deadline on the monotonic clock: the instant before
// the last successful claim or renewal was sent, plus TTL, minus drift.
// A watched lease is lost at this instant unless a renewal succeeds first.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Ctx is cancelled when the lease ends: context.Cause is ErrLeaseLost on
// loss, ErrReleased after Release or Finish. It carries the values of the
// context given to Obtain, not its cancellation.
func (l *Lease) Ctx() context.Context { return l.ctx }

// Done is Ctx().Done().
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Renew extends the lease once (compare-and-extend; also the running mark),
// and moves Deadline. A lease that already ended is not renewed: Renew
// returns its context's cause (ErrLeaseLost or ErrReleased) without a round
// trip, so that no late renewal revives it. When the key is gone or holds
// another token, Renew cancels the lease with ErrLeaseLost and returns an
// error wrapping ErrLeaseLost and ErrLeaseExpired or ErrLeaseTaken. Other
// errors (I/O, ErrNoQuorum) leave the lease as it is. The call is bounded by
// NodeTimeout and, for a watched lease, by the local deadline.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.renew(ctx); err != nil {
		return fmt.Errorf("locker: renew %q: %w", l.claim.Key, err)
	}
	return nil
}

// renew is one renewal round trip; the watchdog calls it with the lease's
// own context.
func (l *Lease) renew(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.ctx.Err() != nil {
		return context.Cause(l.ctx)
	}
	timeout := l.lk.opts.NodeTimeout
	if !l.claim.Unwatched {
		timeout = min(timeout, time.Until(l.Deadline()))
		if ctx != l.ctx {
			// The lease ending (deadline, loss) ends the call too.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(l.ctx, cancel)()
		}
	}
	start := time.Now()
	var err error
	if len(l.lk.nodes) == 1 {
		err = l.renewSingle(ctx, timeout, start)
	} else {
		err = l.renewQuorum(ctx, timeout, start)
	}
	if err != nil {
		return err
	}
	return l.extend(start)
}

// renewSingle is one renew.lua round trip.
func (l *Lease) renewSingle(ctx context.Context, timeout time.Duration, start time.Time) error {
	cmd := redis.NewCmd(ctx, l.args.renewLine()...)
	err := l.lk.nodes[0].run(newCall(ctx, cmd, renewScript.src, start, timeout))
	var s int64
	if err == nil {
		s, err = cmd.Int64()
	}
	if err != nil {
		if l.ctx.Err() != nil {
			return context.Cause(l.ctx)
		}
		return withCtx(ctx, err)
	}
	if err := statusErr(s); err != nil {
		l.lose("renewal", err)
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return nil
}

// extend moves the deadline after a successful renewal sent at start,
// unless the lease ended meanwhile: nothing revives a lost lease.
func (l *Lease) extend(start time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return context.Cause(l.ctx)
	}
	d := start.Add(l.claim.TTL - l.drift)
	if l.timer != nil {
		if !l.timer.Stop() {
			return ErrLeaseLost // the deadline fired while we were renewing
		}
		l.timer.Reset(time.Until(d))
	}
	l.deadline = d
	return nil
}

// end stops the watchdog (waiting for a renewal in flight), waits for the
// quorum claims still in flight, stops the
// deadline timer and cancels the context with ErrReleased (a lost lease
// keeps ErrLeaseLost).
func (l *Lease) end() {
	l.mu.Lock()
	wd, claims := l.wd, l.claims
	l.wd, l.claims = nil, nil
	l.mu.Unlock()
	if wd != nil {
		wd.stop()
	}
	if claims != nil {
		claims.all() // each bounded by NodeTimeout
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.cancel(ErrReleased) // under mu: a renewal's extend sees it
}

// Release ends the lease: it stops the watchdog (waiting for a renewal in
// flight), cancels Ctx with ErrReleased (unless already lost) and deletes the
// lease key if it still holds this token. It returns an error wrapping
// ErrLeaseExpired when the key was gone and ErrLeaseTaken when another token
// held it (that key is left untouched). The slot mark, if any, stays. The
// call is bounded by NodeTimeout. Calling it again only repeats the
// compare-and-delete. In quorum mode it first waits for the lease's claims
// still in flight, then releases on every node and waits for all (each
// bounded by NodeTimeout); it succeeds when a majority held the lease, and
// returns ErrNoQuorum when too few nodes answered to tell.
func (l *Lease) Release(ctx context.Context) error {
	l.end()
	var err error
	if len(l.lk.nodes) == 1 {
		cmd := redis.NewCmd(ctx, l.args.releaseLine(markKeep)...)
		err = l.lk.nodes[0].run(newCall(ctx, cmd, releaseScript.src, time.Now(), l.lk.opts.NodeTimeout))
		var s int64
		if err == nil {
			s, err = cmd.Int64()
		}
		if err == nil {
			err = statusErr(s)
		} else {
			err = withCtx(ctx, err)
		}
	} else {
		err = l.releaseQuorum(ctx)
	}
	if err != nil {
		return fmt.Errorf("locker: release %q: %w", l.claim.Key, err)
	}
	return nil
}

// Finish stops the watchdog and, token-checked, ends the run. With a
// MarkKey it deletes the lease key and sets MarkKey = record for retention;
// the mark is updated as long as it still holds this lease's running record,
// even if the lease key already expired, so an outcome is never lost.
// Without a MarkKey it replaces the lease key by record for retention, so
// the key stays taken. With a HistoryKey it also pushes record there,
// trimmed to HistoryLen, with HistoryTTL. Ctx is cancelled with ErrReleased
// (unless already lost). When the lease key was gone or another token's it
// returns a *FinishError wrapping ErrLeaseExpired or ErrLeaseTaken, which
// says whether the record was still written. retention must be >= 1ms.
func (l *Lease) Finish(ctx context.Context, record string, retention time.Duration) error {
	if retention < time.Millisecond {
		return fmt.Errorf("%w: finish %q: retention %v < 1ms", ErrInvalid, l.claim.Key, retention)
	}
	l.end()
	c := &l.claim
	a := &l.args
	line := finishScript.line(3, a.key, a.mark, c.orKey(c.HistoryKey),
		a.token, record, ms(retention), a.hasMark, flag(c.HistoryKey != ""), c.HistoryLen, ms(c.HistoryTTL))
	var err error
	if len(l.lk.nodes) == 1 {
		cmd := redis.NewCmd(ctx, line...)
		err = l.lk.nodes[0].run(newCall(ctx, cmd, finishScript.src, time.Now(), l.lk.opts.NodeTimeout))
		if err == nil {
			var s int64
			var recorded bool
			if s, recorded, err = parseFinish(cmd.Val()); err == nil {
				if serr := statusErr(s); serr != nil {
					err = &FinishError{Reason: serr, Recorded: recorded}
				}
			}
		} else {
			err = withCtx(ctx, err)
		}
	} else {
		err = l.finishQuorum(ctx, line)
	}
	if err != nil {
		return fmt.Errorf("locker: finish %q: %w", l.claim.Key, err)
	}
	return nil
}
