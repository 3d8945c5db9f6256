package locker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseState is where a lease is in its life.
type leaseState uint8

const (
	stateLive     leaseState = iota // held and renewed
	stateReplaced                   // Ctx cancelled: a successor waits; still renewed until stopBy
	stateLost                       // lost: no more renewals
	stateEnded                      // released or finished
)

// Lease is a held claim. Its methods are safe for concurrent use. A watched
// lease must be ended with Release or Finish (or be lost); until then its
// watchdog goroutine runs.
type Lease struct {
	lk    *Locker
	bid   *Bid // the claim, its token and command lines
	fence int64
	drift time.Duration

	// hold ends when the lease is lost or ended: the watchdog's renewals
	// run under it. ctx, the run's, also ends when the lease is replaced.
	hold       context.Context
	cancelHold context.CancelCauseFunc
	ctx        context.Context
	cancel     context.CancelCauseFunc

	opMu sync.Mutex // serialises round trips: renewals never overlap

	mu        sync.Mutex
	state     leaseState
	deadline  time.Time   // monotonic; moved by each successful renewal
	markUntil time.Time   // the running mark lives at least until then
	stopBy    time.Time   // replaced: no renewal after this
	timer     *time.Timer // fires at deadline (watched leases only)
	wd        *watchdog   // nil when unwatched or stopped
	noticed   bool        // registered for replace notices
	// due is when Claim.Due comes on the server's clock, by the claim's
	// reply and the node's dueClock (zero: it had); see Due.
	due time.Time
	// claims are the quorum claims still in flight when Obtain returned;
	// ending the lease waits for them, so none lands after the release.
	claims *gather[obtainReply]
}

// newLease makes the lease of a successful claim sent at start.
func newLease(lk *Locker, b *Bid, fence int64, start time.Time) *Lease {
	c := &b.claim
	drift := lk.opts.drift(c.TTL)
	return &Lease{
		lk:        lk,
		bid:       b,
		fence:     fence,
		drift:     drift,
		deadline:  start.Add(c.TTL - drift),
		markUntil: start.Add(c.markTTL() - drift),
	}
}

// start makes the lease's contexts, from obtainCtx's values but not its
// cancellation, and starts the watchdog of a watched lease and its replace
// notices.
func (l *Lease) start(obtainCtx context.Context) {
	l.hold, l.cancelHold = context.WithCancelCause(context.WithoutCancel(obtainCtx))
	l.ctx, l.cancel = context.WithCancelCause(l.hold)
	c := &l.bid.claim
	if c.Replace && c.Channel != "" {
		l.noticed = l.lk.notices.add(c.Channel, l)
	}
	if c.Unwatched {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.timer = time.AfterFunc(time.Until(l.deadline.Add(-c.stopTime())), l.expire)
	l.wd = startWatchdog(l)
}

// expire runs at the local deadline of a watched lease, less its StopTime.
func (l *Lease) expire() {
	l.lose("deadline", nil)
}

// lose cancels the lease with ErrLeaseLost and logs why ("deadline" or
// "renewal", with the renewal's finding as err).
func (l *Lease) lose(why string, err error) {
	l.mu.Lock()
	if l.state == stateLost || l.state == stateEnded {
		l.mu.Unlock()
		return
	}
	l.state = stateLost
	l.cancelHold(ErrLeaseLost)
	l.mu.Unlock()
	l.unnotice()
	l.lk.opts.Logger.Warn().Str("key", l.bid.claim.Key).Int64("fence", l.fence).Str("reason", why).Err(err).Msg("lease lost")
}

// replaced tells the run to stop: a later claim (overlap replace) waits for
// the lease. The lease is still renewed for one TTL at most, so that the
// successor starts once this run has stopped, not before.
func (l *Lease) replaced(how string) {
	l.mu.Lock()
	if l.state != stateLive {
		l.mu.Unlock()
		return
	}
	l.state = stateReplaced
	l.stopBy = time.Now().Add(l.bid.claim.TTL)
	l.cancel(errReplaced)
	l.mu.Unlock()
	l.lk.opts.Logger.Info().Str("key", l.bid.claim.Key).Int64("fence", l.fence).Str("how", how).Msg("lease replaced: stopping the run")
}

// notice is a replace message for token.
func (l *Lease) notice(token string) {
	if token == l.bid.token {
		l.replaced("message")
	}
}

func (l *Lease) unnotice() {
	l.mu.Lock()
	n := l.noticed
	l.noticed = false
	l.mu.Unlock()
	if n {
		l.lk.notices.remove(l.bid.claim.Channel, l)
	}
}

// Key is the lease key.
func (l *Lease) Key() string { return l.bid.claim.Key }

// Token is the lease's 128-bit random token, in hex.
func (l *Lease) Token() string { return l.bid.token }

// Fence is the lease's fencing number: strictly greater than the fence of
// every earlier lease on the same MetaKey (single node, as long as the
// counter survives; see NewQuorum for the promise in quorum mode).
func (l *Lease) Fence() int64 { return l.fence }

// Due is the local time (with a monotonic reading) by which the claim's
// Claim.Due has come on the server's clock (on every granting node's, in
// quorum mode), so that a run started then never starts early there,
// whatever this machine's wall clock says: the wait the claim's reply gave,
// counted from when the reply arrived or, earlier, from a recent reply of
// the same node that queued less (see dueClock). Zero when the claim won at
// or after Due, or had none.
func (l *Lease) Due() time.Time { return l.due }

// Deadline is the local deadline on the monotonic clock: the instant before
// the last successful claim or renewal was sent, plus TTL, minus drift.
// A watched lease is lost StopTime before this instant unless a renewal
// succeeds first.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Ctx is cancelled when the run must stop: context.Cause is ErrLeaseLost on
// loss, one wrapping ErrLeaseLost and ErrReplaced when a later claim
// replaces the run (overlap replace), ErrReleased after Release or Finish.
// It carries the values of the context given to Obtain, not its
// cancellation.
func (l *Lease) Ctx() context.Context { return l.ctx }

// Done is Ctx().Done().
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Renew extends the lease once (compare-and-extend; also the running mark),
// and moves Deadline. A lease that was lost or ended is not renewed: Renew
// returns its cause (ErrLeaseLost or ErrReleased) without a round trip, so
// that no late renewal revives it. When the key is gone or holds another
// token, Renew cancels the lease with ErrLeaseLost and returns an error
// wrapping ErrLeaseLost and ErrLeaseExpired or ErrLeaseTaken. When a
// successor waits, the lease is extended but its Ctx is cancelled (see
// Ctx). Other errors (I/O, ErrNoQuorum) leave the lease as it is. The call
// is bounded by NodeTimeout and, for a watched lease, by the local deadline.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.renew(ctx); err != nil {
		return fmt.Errorf("locker: renew %q: %w", l.bid.claim.Key, err)
	}
	return nil
}

// renew is one renewal round trip; the watchdog calls it with l.hold.
func (l *Lease) renew(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if l.hold.Err() != nil {
		return context.Cause(l.hold)
	}
	if l.bid.lines.renew == nil {
		// Built at the first renewal: most runs end before one.
		l.bid.lines.renew = l.bid.claim.renewLine(l.bid.token)
	}
	timeout := l.lk.opts.NodeTimeout
	if !l.bid.claim.Unwatched {
		timeout = min(timeout, time.Until(l.Deadline()))
		if ctx != l.hold {
			// The lease ending (deadline, loss) ends the call too.
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(l.hold, cancel)()
		}
	}
	start := time.Now()
	var status string
	var err error
	if len(l.lk.nodes) == 1 {
		status, err = l.renewSingle(ctx, timeout)
	} else {
		status, err = l.renewQuorum(ctx, timeout, start)
	}
	if err != nil {
		return err
	}
	if err := l.extend(start); err != nil {
		return err
	}
	if status == statusReplaced {
		l.replaced("renewal")
	}
	return nil
}

// renewSingle is one renew.lua round trip, in the node's renewal lane.
func (l *Lease) renewSingle(ctx context.Context, timeout time.Duration) (string, error) {
	cmd := redis.NewCmd(ctx, l.bid.lines.renew...)
	err := l.lk.nodes[0].lanes[laneRenew].run(newCall(ctx, cmd, renewScript, timeout))
	var s string
	if err == nil {
		s, err = cmd.Text()
	}
	if err != nil {
		if l.hold.Err() != nil {
			return "", context.Cause(l.hold)
		}
		return "", withCtx(ctx, err)
	}
	if err := statusErr(s); err != nil {
		l.lose("renewal", err)
		return "", fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return s, nil
}

// extend moves the deadline after a successful renewal sent at start,
// unless the lease ended meanwhile: nothing revives a lost lease.
func (l *Lease) extend(start time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold.Err() != nil {
		return context.Cause(l.hold)
	}
	c := &l.bid.claim
	d := start.Add(c.TTL - l.drift)
	if l.timer != nil {
		if !l.timer.Stop() {
			return ErrLeaseLost // the deadline fired while we were renewing
		}
		l.timer.Reset(time.Until(d.Add(-c.stopTime())))
	}
	l.deadline = d
	l.markUntil = start.Add(c.markTTL() - l.drift)
	return nil
}

// renewing says whether the watchdog should still renew: a replaced lease
// is renewed only until stopBy.
func (l *Lease) renewing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == stateLive || (l.state == stateReplaced && time.Now().Before(l.stopBy))
}

// end stops the watchdog (waiting for a renewal in flight), waits for the
// quorum claims still in flight, stops the deadline timer, and ends both
// contexts with ErrReleased (a lost or replaced lease keeps its cause).
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
	l.unnotice()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.state != stateLost {
		l.state = stateEnded
	}
	l.cancel(ErrReleased)
	l.cancelHold(ErrReleased) // under mu: a renewal's extend sees it
}

// holdsUntil is until when an ending call may be retried: while the running
// mark (or, without one, the lease key) can still hold this run.
func (l *Lease) holdsUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bid.claim.MarkKey != "" {
		return l.markUntil
	}
	return l.deadline
}

// Release ends the lease: it stops the watchdog (waiting for a renewal in
// flight), cancels Ctx with ErrReleased (unless already lost or replaced)
// and deletes the lease key if it still holds this token. It returns an
// error wrapping ErrLeaseExpired when the key was gone and ErrLeaseTaken
// when another token held it (that key is left untouched). The slot mark,
// if any, stays. I/O errors are retried, with backoff, while ctx lasts and
// the lease could still be held; each call is bounded by NodeTimeout.
// Calling it again only repeats the compare-and-delete. In quorum mode it
// first waits for the lease's claims still in flight, then releases on
// every node and waits for all; it succeeds when a majority held the lease,
// and returns ErrNoQuorum when too few nodes answered to tell.
func (l *Lease) Release(ctx context.Context) error {
	l.end()
	line := l.bid.claim.releaseLine(l.bid.token, markKeep, "", l.leaseFence())
	err := l.retry(ctx, func() error {
		if len(l.lk.nodes) > 1 {
			return l.releaseQuorum(ctx, line)
		}
		cmd := redis.NewCmd(ctx, line...)
		err := l.lk.nodes[0].lanes[laneMain].run(newCall(ctx, cmd, releaseScript, l.lk.opts.NodeTimeout))
		var s string
		if err == nil {
			s, err = cmd.Text()
		}
		if err != nil {
			return withCtx(ctx, err)
		}
		if err := statusErr(s); err != nil {
			return final{err}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("locker: release %q: %w", l.bid.claim.Key, err)
	}
	return nil
}

// leaseFence is the fence that ending the lease raises each node's
// counter to, in quorum mode (0 otherwise: one node's counter gave it).
// The claim's write-back of the fence (Bid.writeFence) reaches a majority
// but may miss the nodes this lease holds (a write cut, or dropped from
// the queue): a claim there once the lease is freed, whose numbers on the
// raised nodes were taken before the raise (a claim sent ahead, its marks
// kept across attempts), could take this lease's number again. Raised as
// the lease is freed, on every node this lease holds, it cannot.
func (l *Lease) leaseFence() int64 {
	if len(l.lk.nodes) == 1 || l.bid.claim.MetaKey == "" {
		return 0
	}
	return l.fence
}

// Finish stops the watchdog and, token-checked, ends the run with record.
// With a MarkKey it deletes the lease key and writes record to the mark for
// Retention (and to the history); the mark is updated as long as it still
// holds this lease's running claim, even if the lease key already expired,
// so an outcome is never lost. Without a MarkKey it replaces the lease key
// by record for Retention, so the key stays taken. Ctx is cancelled with
// ErrReleased (unless already lost or replaced).
//
// I/O errors are retried with the same token, with backoff, while ctx lasts
// and the running mark (or, without a mark, the lease) could still hold the
// run; a repeat of a finish that landed is recognised. When the lease key
// was gone or another token's it returns a *FinishError wrapping
// ErrLeaseExpired or ErrLeaseTaken, which says whether the record was still
// written. It fails with ErrInvalid when the claim has no Retention.
func (l *Lease) Finish(ctx context.Context, record string) error {
	c := &l.bid.claim
	if c.Retention < time.Millisecond {
		return fmt.Errorf("%w: finish %q: the claim has no Retention", ErrInvalid, c.Key)
	}
	l.end()
	line := c.finishLine(l.bid.token, record, l.leaseFence())
	err := l.retry(ctx, func() error {
		if len(l.lk.nodes) > 1 {
			return l.finishQuorum(ctx, line)
		}
		cmd := redis.NewCmd(ctx, line...)
		if err := l.lk.nodes[0].lanes[laneMain].run(newCall(ctx, cmd, finishScript, l.lk.opts.NodeTimeout)); err != nil {
			return withCtx(ctx, err)
		}
		s, recorded, err := parseFinish(cmd.Val())
		if err != nil {
			return err
		}
		if serr := statusErr(s); serr != nil {
			return final{&FinishError{Reason: serr, Recorded: recorded}}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("locker: finish %q: %w", c.Key, err)
	}
	return nil
}

// final marks an error of state, which retry returns at once.
type final struct{ err error }

func (f final) Error() string { return f.err.Error() }
func (f final) Unwrap() error { return f.err }

// Backoff of ending calls retried after I/O errors.
const (
	endRetryMin = 25 * time.Millisecond
	endRetryMax = time.Second
)

// retry runs op until it succeeds, fails with a final error, ctx ends, or
// the lease can no longer hold the run (holdsUntil).
func (l *Lease) retry(ctx context.Context, op func() error) error {
	wait := endRetryMin
	for n := 1; ; n++ {
		err := op()
		var f final
		switch {
		case err == nil:
			return nil
		case errors.As(err, &f):
			return f.err
		case ctx.Err() != nil || !time.Now().Add(wait).Before(l.holdsUntil()):
			return err
		}
		l.lk.opts.Logger.Debug().Str("key", l.bid.claim.Key).Int64("fence", l.fence).Int("call", n).Int64("retry_in_ms", wait.Milliseconds()).Err(err).Msg("ending the lease failed; retrying with the same token")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return withCtx(ctx, err)
		case <-t.C:
		}
		wait = min(2*wait, endRetryMax)
	}
}

// awaitPredecessor waits until the run this claim replaces has released
// its lease (or the lease expired), polling take.lua, and takes it. The
// wait is bounded by the predecessor's remaining TTL plus two TTLs (it is
// renewed for one TTL at most once replaced), not by ctx's deadline: the
// slot is this claim's already. A later claim that replaced this one first
// ends it with Records.Busy and ErrNotObtained (an I/O error when that
// record could not be written); a wait whose last take failed ends with
// that I/O error, the claim left as it is.
func (l *Lease) awaitPredecessor(ctx context.Context, pttl int64) error {
	c := &l.bid.claim
	if l.bid.lines.take == nil {
		l.bid.lines.take = c.takeLine(l.bid.token)
	}
	ctx = context.WithoutCancel(ctx)
	bound := time.Now().Add(time.Duration(max(pttl, 0))*time.Millisecond + 2*c.TTL + l.lk.opts.NodeTimeout)
	poll := 10 * time.Millisecond
	for {
		start := time.Now()
		won, superseded, fence, err := l.take(ctx)
		over := !time.Now().Add(poll).Before(bound)
		switch {
		case won && err != nil:
			// Quorum mode: the new fence is not on a majority. The lease is
			// this claim's where the take won: a retry as itself wins it
			// there with that fence, and waits again (a new take, new
			// fences) where the take did not win.
			return fmt.Errorf("locker: replacing claim %q: %w", c.Key, err)
		case won:
			if fence > 0 {
				l.fence = fence
			}
			l.mu.Lock()
			l.deadline = start.Add(c.TTL - l.drift)
			l.markUntil = start.Add(c.markTTL() - l.drift)
			l.mu.Unlock()
			return nil
		case over && !superseded && err != nil:
			// The last take failed: whether the run stopped is not known,
			// so the claim stays as it is, to be retried as itself (which
			// waits again) or withdrawn.
			return fmt.Errorf("locker: replacing claim %q: %w", c.Key, err)
		case superseded || over:
			wctx, cancel := context.WithTimeout(ctx, l.lk.opts.NodeTimeout)
			werr := l.bid.withdraw(wctx, c.Records.Busy)
			cancel()
			l.lk.opts.Logger.Debug().Str("key", c.Key).Int64("fence", l.fence).Bool("superseded", superseded).Err(err).AnErr("withdraw", werr).Msg("replacing claim gave up")
			if werr != nil {
				// Not on record: an I/O error, so that the claim is
				// retried as itself (refused busy, with its record) or
				// withdrawn.
				return werr
			}
			return &NotObtainedError{Reason: ErrNotObtained}
		}
		time.Sleep(poll)
		poll = min(2*poll, 100*time.Millisecond)
	}
}

// take is one take.lua round on every node: won when a majority handed the
// lease over, superseded when a later successor made that impossible. A
// take that won has the greatest of the new fences that the nodes took
// (see take.lua), in quorum mode written back to a majority
// (Bid.writeFence): a failed write-back is err with won.
func (l *Lease) take(ctx context.Context) (won, superseded bool, fence int64, err error) {
	lk := l.lk
	rs := fanout(ctx, lk.nodes, laneMain, lk.opts.NodeTimeout, takeScript, l.bid.lines.take, parseObtainCmd).all()
	n, gone := 0, 0
	for _, r := range rs {
		switch {
		case r.err != nil:
		case r.val.code == replyWon:
			n++
			fence = max(fence, r.val.fence)
		case r.val.code == replySuperseded:
			gone++
		}
	}
	switch {
	case n < lk.quorum:
		return false, len(rs)-gone < lk.quorum, 0, joinErrs(rs)
	case fence > 0:
		return true, false, fence, l.bid.writeFence(ctx, fence, rs)
	}
	return true, false, 0, nil
}
