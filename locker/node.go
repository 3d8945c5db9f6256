package locker

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// node is one Redis (one client) with automatic pipelining: the commands
// that concurrent callers send to the same node while a round trip is in
// flight are queued and then written together as one pipeline, so that 32
// callers cost a few syscalls per round trip instead of a few each.
//
// A call made while the node is idle runs at once on the caller's goroutine
// (single-node mode, run) or on a new flusher goroutine (send). The flusher
// owns the queue: it sends everything queued as one pipeline, delivers the
// replies, and repeats until the queue is empty; then it exits. So no
// goroutine outlives the calls it serves, and a Locker needs no Close.
//
// Every call keeps its own bound: its deadline is the earlier of its
// context's deadline and its start plus its timeout. A batch is sent with
// the earliest deadline of its calls (one timer per batch); a call whose
// context ended, or whose deadline passed, while it was queued is answered
// with that error and not sent. A caller waiting in run also returns as soon
// as its context ends. One caller's calls to one node run in the order made
// (the queue is FIFO and one batch is in flight at a time).
type node struct {
	client redis.UniversalClient

	mu    sync.Mutex
	busy  bool    // a call or batch is in flight; new calls queue
	queue []*call // waiting for the next batch
	spare []*call // the previous batch's slice, reused
}

// maxBatch caps the calls sent in one pipeline. A burst (every job of a
// replica due at the same second) then gets its replies progressively; the
// cap is large enough that 32 concurrent callers still share one write.
const maxBatch = 128

// call is one command on one node.
type call struct {
	ctx      context.Context
	cmd      *redis.Cmd
	src      string    // the script's source, for EVAL on NOSCRIPT
	deadline time.Time // start + timeout, or ctx's deadline if sooner
	node     int
	done     chan *call // receives the call when its reply (or error) is in
}

func newCall(ctx context.Context, cmd *redis.Cmd, src string, start time.Time, timeout time.Duration) *call {
	d := start.Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return &call{ctx: ctx, cmd: cmd, src: src, deadline: d}
}

// run makes the call and waits for its reply: on the caller's goroutine
// when the node is idle, otherwise in the next batch. It returns cmd's
// error, or ctx's when ctx ended first (the command may still run).
func (n *node) run(c *call) error {
	n.mu.Lock()
	if !n.busy {
		n.busy = true
		n.mu.Unlock()
		n.exec1(c)
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.busy = false
			n.mu.Unlock()
		} else {
			n.mu.Unlock()
			go n.flush()
		}
		return c.cmd.Err()
	}
	c.done = make(chan *call, 1)
	n.queue = append(n.queue, c)
	n.mu.Unlock()
	select {
	case <-c.done:
		return c.cmd.Err()
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}

// send queues the call, starting a flusher when the node is idle; c.done
// (which the caller made, buffered) receives c when its reply is in.
func (n *node) send(c *call) {
	n.mu.Lock()
	n.queue = append(n.queue, c)
	if n.busy {
		n.mu.Unlock()
		return
	}
	n.busy = true
	n.mu.Unlock()
	go n.flush()
}

// flush sends the queue as batches until it is empty, then exits.
func (n *node) flush() {
	for {
		n.mu.Lock()
		batch := n.queue
		if len(batch) == 0 {
			n.busy = false
			n.mu.Unlock()
			return
		}
		if len(batch) > maxBatch {
			// Replies come back batch by batch: the first callers of a burst
			// need not wait for Redis to run the whole burst.
			batch = n.queue[:maxBatch:maxBatch]
			n.queue = append(n.spare[:0], n.queue[maxBatch:]...)
		} else {
			n.queue = n.spare[:0]
		}
		n.mu.Unlock()

		n.execBatch(batch)
		for i, c := range batch {
			c.done <- c
			batch[i] = nil
		}
		n.mu.Lock()
		n.spare = batch
		n.mu.Unlock()
	}
}

// exec1 runs one call on its own, bounded by its deadline.
func (n *node) exec1(c *call) {
	ctx, cancel := c.ctx, context.CancelFunc(noop)
	if dl, ok := ctx.Deadline(); !ok || dl.After(c.deadline) {
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
	}
	_ = n.client.Process(ctx, c.cmd)
	if isNoScript(c.cmd) {
		n.evalFallback(ctx, []*call{c})
	}
	cancel()
}

// execBatch sends the live calls of batch as one pipeline with their
// earliest deadline and answers the others with their context's error or
// context.DeadlineExceeded.
func (n *node) execBatch(batch []*call) {
	now := time.Now()
	live := make([]redis.Cmder, 0, len(batch))
	var dl time.Time
	var first *call
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.cmd.SetErr(err)
			continue
		}
		if !now.Before(c.deadline) {
			c.cmd.SetErr(context.DeadlineExceeded)
			continue
		}
		if first == nil || c.deadline.Before(dl) {
			dl = c.deadline
		}
		if first == nil {
			first = c
		}
		live = append(live, c.cmd)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		first.deadline = dl
		n.exec1(first)
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	pipe := n.client.Pipeline()
	_ = pipe.BatchProcess(ctx, live...)
	_, _ = pipe.Exec(ctx)
	var retry []*call
	for _, c := range batch {
		if isNoScript(c.cmd) {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		n.evalFallback(ctx, retry)
	}
}

// evalFallback reruns EVALSHA calls that met NOSCRIPT (after a restart or
// SCRIPT FLUSH) as EVAL, which also loads the script again.
func (n *node) evalFallback(ctx context.Context, cs []*call) {
	pipe := n.client.Pipeline()
	evals := make([]*redis.Cmd, len(cs))
	for i, c := range cs {
		args := append([]any(nil), c.cmd.Args()...)
		args[0], args[1] = "eval", c.src
		evals[i] = redis.NewCmd(c.ctx, args...)
		_ = pipe.Process(ctx, evals[i])
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cs {
		c.cmd.SetVal(evals[i].Val())
		c.cmd.SetErr(evals[i].Err())
	}
}

func isNoScript(cmd *redis.Cmd) bool {
	err := cmd.Err()
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
