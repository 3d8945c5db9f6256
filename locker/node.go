package locker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// node is one Redis (one client) with automatic pipelining, in two lanes:
// renewals travel in batches of their own, so that a renewal close to its
// lease's deadline never shortens, or waits behind, a burst of claims; every
// other call (claims, finishes, releases, skip records) goes in the main
// lane, so that an overloaded replica sends one batch at a time (in
// quorum mode skip records behind the others, see prioRecord). (A lane
// of their own, tried, bought nothing measurable at 10,000 firings/s and
// was not shown harmless for 30 replicas: bench/results/ab/rate-10..13-*,
// r30-5..10-*.)
type node struct {
	client Client
	lanes  [2]lane
	due    dueClock // Lease.Due of this node's claim replies
}

// Lanes of a node.
const (
	laneMain  = 0
	laneRenew = 1
)

// priority orders the calls queued in a lane.
type priority uint8

const (
	// prioNormal calls go out in the order made.
	prioNormal priority = iota
	// prioRecord calls (quorum mode's skip records) wait behind the
	// prioNormal calls queued with them, filling what those leave of a
	// batch, and take at least recordShare of each batch while any wait:
	// a burst of records (two rounds each) does not delay claims and
	// finishes, so that their replies do not come late and turn into more
	// skips (quorum mode collapsed so past its knee), and records still go
	// out in an overload. On one node a record is one call, carried with
	// the claims in batch.lua, and stays in order: behind them, records
	// fell behind at 10,000 firings a second and went unwritten.
	prioRecord
)

// recordShare is how many prioRecord calls a batch carries at least, when
// that many are queued, while prioNormal calls wait.
const recordShare = maxBatch / 4

// newNode is the node of c; unbatched: Options.Unbatched.
func newNode(c Client, unbatched bool) *node {
	n := &node{client: c}
	// One script call may touch the keys of many jobs only where every key
	// lives on the one server: not in a cluster, whose scripts cannot span
	// hash slots (and every job has its own), nor in any client that
	// shards keys itself.
	_, single := c.(*redis.Client)
	for i := range n.lanes {
		n.lanes[i].client = c
		n.lanes[i].combine.Store(single && !unbatched)
	}
	return n
}

// lane pipelines the commands that concurrent callers send to the same
// node while a round trip is in flight: they are queued and then written
// together, so that 32 callers cost a few syscalls per round trip instead
// of a few each.
//
// A call made while the lane is idle runs at once on the caller's goroutine
// (run) or on a new flusher goroutine (send). The flusher owns the queue:
// it sends everything queued as one pipeline, delivers the replies, and
// repeats until the queue is empty; then it exits. So no goroutine outlives
// the calls it serves, and a Locker needs no Close.
//
// Every call keeps its own bound: its timeout counts from when it is
// written, not from when it was queued (a call waiting behind a burst has
// not lost its reply), and it never outlives its context. A batch is
// written with the latest deadline of its calls, so no call is cut short by
// another's; a caller whose own context ends first stops waiting. A call
// whose context ended while it was queued is answered with that error and
// not sent. One caller's calls of one priority to one lane run in the
// order made (each queue is FIFO and one batch is in flight at a time).
//
// On a server that holds every key (not a cluster), the script calls of a
// batch go as one call of batch.lua, which runs them in turn and answers
// each with its own reply (see combine): Redis reads, dispatches and
// answers one command instead of up to maxBatch.
type lane struct {
	client  Client
	ack     ackPolicy   // WAIT after claims (see ack.go); zero: off
	combine atomic.Bool // a batch's script calls travel in batch.lua's (see combine); off after CROSSSLOT

	mu      sync.Mutex
	busy    bool      // a call or batch is in flight; new calls queue
	since   time.Time // when the call or batch in flight was written; zero when none
	flight  int       // prioNormal calls in the batch in flight (0: none)
	oldest  time.Time // when the oldest of them was queued
	queue   []*call   // prioNormal calls waiting for the next batch
	records []*call   // prioRecord calls waiting for the next batch
	spare   []*call   // the previous batch's slice, reused
}

// maxBatch caps the calls sent in one pipeline. A burst (every job of a
// replica due at the same second) then gets its replies progressively; the
// cap is large enough that 32 concurrent callers still share one write.
const maxBatch = 128

// call is one command on one node.
type call struct {
	ctx     context.Context
	cmd     *redis.Cmd
	script  *script       // the script it runs (nil: none), for EVAL on NOSCRIPT; named: may be carried (see combine)
	prio    priority      // its place in its lane's queue
	queued  time.Time     // when it was queued (zero: run at once on its caller's goroutine)
	parts   []*call       // the calls that a batch.lua call carries (see combine)
	timeout time.Duration // from the write
	node    int
	done    chan *call // receives the call when its reply (or error) is in
	ack     ackState   // replica acknowledgements, for claims (see ack.go)
	state   atomic.Int32
	written time.Time // when it was written (zero: never); set before done receives it
}

// Call states: a queued call is either written or dropped unsent, once.
const (
	callQueued  = iota
	callWritten // in a batch being written (it may run)
	callUnsent  // its context ended first: never written
)

// unsent says whether c was dropped from its queue without being written.
func (c *call) unsent() bool { return c.state.Load() == callUnsent }

// cutByCtx says whether c's context, not its node, ended it: it was
// dropped unsent, or it timed out (or was cancelled) once its context had
// ended, at a deadline that was its context's, earlier than its own
// timeout from the write. A socket timeout of the client's own (its
// ReadTimeout) while the context lives is the node's. Called as soon as
// c's reply (or error) is in.
func (c *call) cutByCtx() bool {
	if c.unsent() {
		return true
	}
	err := c.cmd.Err()
	switch {
	case err == nil:
		return false
	case !ended(c.ctx, time.Now()):
		return false
	case errors.Is(err, context.Canceled):
		return true
	case !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded):
		return false
	}
	cd, ok := c.ctx.Deadline()
	return ok && cd.Before(c.written.Add(c.timeout))
}

func newCall(ctx context.Context, cmd *redis.Cmd, s *script, timeout time.Duration) *call {
	return &call{ctx: ctx, cmd: cmd, script: s, timeout: timeout}
}

// deadline is the call's deadline if written at now.
func (c *call) deadline(now time.Time) time.Time {
	d := now.Add(c.timeout)
	if cd, ok := c.ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// run makes the call and waits for its reply: on the caller's goroutine
// when the lane is idle, otherwise in the next batch. It returns cmd's
// error, or ctx's when ctx ended first (the command may still run).
func (l *lane) run(c *call) error {
	l.mu.Lock()
	if !l.busy {
		l.busy, l.since = true, time.Now()
		l.flight, l.oldest = 0, l.since
		if c.prio == prioNormal {
			l.flight = 1
		}
		l.mu.Unlock()
		l.exec1(c)
		l.mu.Lock()
		l.since, l.flight = time.Time{}, 0 // the flusher sets them for its batches
		if !l.queued() {
			l.busy = false
			l.mu.Unlock()
		} else {
			l.mu.Unlock()
			go l.flush()
		}
		return c.cmd.Err()
	}
	c.done = make(chan *call, 1)
	l.enqueue(c)
	l.mu.Unlock()
	select {
	case <-c.done:
	case <-c.ctx.Done():
		if !c.state.CompareAndSwap(callQueued, callUnsent) && !c.unsent() {
			return c.ctx.Err() // written: its reply is lost to the caller
		}
	}
	if c.unsent() {
		return notSent(c.ctx)
	}
	return c.cmd.Err()
}

// send queues the call, starting a flusher when the lane is idle; c.done
// (which the caller made, buffered) receives c when its reply is in.
func (l *lane) send(c *call) {
	l.mu.Lock()
	l.enqueue(c)
	if l.busy {
		l.mu.Unlock()
		return
	}
	l.busy = true
	l.mu.Unlock()
	go l.flush()
}

// enqueue queues c by its priority; l.mu is held.
func (l *lane) enqueue(c *call) {
	c.queued = time.Now()
	if c.prio == prioRecord {
		l.records = append(l.records, c)
	} else {
		l.queue = append(l.queue, c)
	}
}

// queued says whether any call waits; l.mu is held.
func (l *lane) queued() bool { return len(l.queue)+len(l.records) > 0 }

// flush sends the queues as batches until they are empty, then exits.
// A batch takes up to maxBatch calls: the prioNormal calls first, in the
// order made, then prioRecord calls in what they leave, and at least
// recordShare of those while they wait (see prioRecord).
func (l *lane) flush() {
	for {
		l.mu.Lock()
		if !l.queued() {
			l.busy, l.since, l.flight = false, time.Time{}, 0
			l.mu.Unlock()
			return
		}
		l.since = time.Now()
		// Replies come back batch by batch: the first callers of a burst
		// need not wait for Redis to run the whole burst.
		nRec := min(len(l.records), max(maxBatch-len(l.queue), recordShare))
		nNorm := min(len(l.queue), maxBatch-nRec)
		batch := append(l.spare[:0], l.queue[:nNorm]...)
		batch = append(batch, l.records[:nRec]...)
		l.queue, l.records = dropFront(l.queue, nNorm), dropFront(l.records, nRec)
		l.flight = nNorm
		if nNorm > 0 {
			l.oldest = batch[0].queued // the queue is FIFO
		}
		l.mu.Unlock()

		l.execBatch(batch)
		for i, c := range batch {
			c.done <- c
			batch[i] = nil
		}
		l.mu.Lock()
		l.spare, l.flight = batch, 0
		l.mu.Unlock()
	}
}

// dropFront removes q's first n calls, keeping its array.
func dropFront(q []*call, n int) []*call {
	if n == 0 {
		return q
	}
	k := copy(q, q[n:])
	clear(q[k:])
	return q[:k]
}

// backlog says how long the oldest prioNormal call not yet answered (in
// the batch in flight or queued) has waited, while more than a batch of
// them waits in all: calls made now would wait behind at least one full
// batch more. It is 0 otherwise, and while the reply in flight has waited
// more than half that long: the calls then wait for a node that does not
// answer (an outage, or a held reply, after which they all go out), not
// for Redis to work through them (an overload).
func (l *lane) backlog(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flight+len(l.queue) <= maxBatch {
		return 0
	}
	oldest := l.oldest
	if l.flight == 0 {
		oldest = l.queue[0].queued
	}
	b := now.Sub(oldest)
	if !l.since.IsZero() && now.Sub(l.since) > b/2 {
		return 0
	}
	return b
}

// waiting says how long the call or batch in flight has waited for its
// reply (0 when none is in flight). Calls queued behind it wait as long.
func (l *lane) waiting(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.since.IsZero() {
		return 0
	}
	return now.Sub(l.since)
}

// exec1 runs one call on its own, bounded by its deadline.
func (l *lane) exec1(c *call) {
	c.written = time.Now()
	c.state.Store(callWritten)
	ctx, cancel := context.WithDeadline(c.ctx, c.deadline(c.written))
	if l.ack.wants([]*call{c}) {
		l.execAcked(ctx, c)
	} else {
		_ = l.client.Process(ctx, c.cmd)
	}
	if isNoScript(c.cmd) {
		l.evalFallback(ctx, []*call{c})
	}
	cancel()
}

// ended says whether ctx has ended by now: also when its deadline has
// passed but its timer has not fired yet (a call written then would only
// time out on the socket).
func ended(ctx context.Context, now time.Time) bool {
	d, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !d.After(now)
}

// notSent is the error of a call dropped from its queue unsent. Those for
// a deadline and a cancel are built once: an overloaded replica drops
// thousands of calls a second, and formatting an error for each took a
// tenth of its CPU (30 replicas on 2 cores, profiled).
func notSent(ctx context.Context) error {
	switch cause := ctx.Err(); cause {
	case nil, context.DeadlineExceeded: // nil: see ended
		return errNotSentDeadline
	case context.Canceled:
		return errNotSentCanceled
	default:
		return fmt.Errorf("%w: %w", ErrNotSent, cause)
	}
}

var (
	errNotSentDeadline = fmt.Errorf("%w: %w", ErrNotSent, context.DeadlineExceeded)
	errNotSentCanceled = fmt.Errorf("%w: %w", ErrNotSent, context.Canceled)
)

// execBatch sends the live calls of batch as one pipeline with their latest
// deadline, their script calls carried in batch.lua calls when the lane
// combines them (see combine), and answers the others with ErrNotSent (and
// their context's error), as run does.
func (l *lane) execBatch(batch []*call) {
	now := time.Now()
	live := make([]*call, 0, len(batch))
	var dl time.Time
	for _, c := range batch {
		if ended(c.ctx, now) || !c.state.CompareAndSwap(callQueued, callWritten) {
			c.state.Store(callUnsent)
			c.cmd.SetErr(notSent(c.ctx))
			continue
		}
		c.written = now
		if d := c.deadline(now); len(live) == 0 || d.After(dl) {
			dl = d
		}
		live = append(live, c)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		l.exec1(live[0])
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if !l.combine.Load() {
		l.pipeline(ctx, live)
		return
	}
	sent := combine(ctx, now, live)
	l.pipeline(ctx, sent)
	var refused []*call
	for _, c := range sent {
		if c.parts != nil && isCrossSlot(c.cmd) {
			// The server (a cluster node, or a proxy in front of several)
			// refused a call that spans hash slots before running any of
			// it: send its calls on their own, and from now on every call.
			l.combine.Store(false)
			refused = append(refused, c.parts...)
			continue
		}
		c.answerParts()
	}
	if len(refused) > 0 {
		l.pipeline(ctx, refused)
	}
}

// pipeline sends cs in one pipeline within ctx, with WAIT after them when
// one asks for acknowledgements, and reruns those answered NOSCRIPT as EVAL.
func (l *lane) pipeline(ctx context.Context, cs []*call) {
	pipe := l.client.Pipeline()
	for _, c := range cs {
		_ = pipe.Process(ctx, c.cmd)
	}
	w := l.ack.follow(ctx, pipe, cs)
	_, _ = pipe.Exec(ctx)
	settle(w, cs)
	var retry []*call
	for _, c := range cs {
		if isNoScript(c.cmd) {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		l.evalFallback(ctx, retry)
	}
}

// evalFallback reruns EVALSHA calls that met NOSCRIPT (after a restart or
// SCRIPT FLUSH) in one pipeline: the first call of each script as EVAL,
// which loads it again, the others of that script as EVALSHA behind it.
// A batch of a restart's first burst (up to maxBatch claims) then sends
// the script's source once, not once per claim (batch.lua's, where the
// claims travel in it; obtain.lua's on a Cluster). A call answered NOSCRIPT
// again (the scripts flushed once more in between) fails with that
// error, and its caller's retry loads the script anew.
func (l *lane) evalFallback(ctx context.Context, cs []*call) {
	pipe := l.client.Pipeline()
	evals := make([]*redis.Cmd, len(cs))
	var loaded []*script // scripts sent as EVAL in this pipeline
	for i, c := range cs {
		args := append([]any(nil), c.cmd.Args()...)
		if !slices.Contains(loaded, c.script) {
			args[0], args[1] = "eval", c.script.src
			loaded = append(loaded, c.script)
		}
		evals[i] = redis.NewCmd(c.ctx, args...)
		_ = pipe.Process(ctx, evals[i])
	}
	w := l.ack.follow(ctx, pipe, cs) // the evals wrote on this connection
	_, _ = pipe.Exec(ctx)
	settle(w, cs)
	for i, c := range cs {
		c.cmd.SetVal(evals[i].Val())
		c.cmd.SetErr(evals[i].Err())
	}
}

func isNoScript(cmd *redis.Cmd) bool {
	err := cmd.Err()
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

func isCrossSlot(cmd *redis.Cmd) bool {
	err := cmd.Err()
	return err != nil && redis.HasErrorPrefix(err, "CROSSSLOT")
}
