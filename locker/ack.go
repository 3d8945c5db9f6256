package locker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replica acknowledgements of claims (Options.MinReplicasAck).
//
// Redis replicates asynchronously: a claim that the master answered may not
// have reached any replica when the master dies, and a replica promoted by
// Sentinel then knows nothing of it, so another replica can claim and run
// the same slot again. WAIT n timeout blocks until n replicas acknowledged
// every write made so far on the connection it is sent on, and no other:
// so it must follow the claim on the claim's own connection. A lane sends
// it as the last command of the pipeline that carries the claim (one
// pipeline is one connection): one WAIT covers every claim of a batch, and
// a claim sent alone is sent as a pipeline of two. Only claims ask for it;
// renewals, finishes and releases are sent as before.

// DefaultAckTimeout is how long a claim waits for replica
// acknowledgements when Options.AckTimeout is zero.
const DefaultAckTimeout = 500 * time.Millisecond

// ackPolicy is a lane's WAIT: n replicas within timeout; n == 0 is off.
type ackPolicy struct {
	n       int
	timeout time.Duration
}

// ackState is what WAIT said about the writes of one call.
type ackState struct {
	want     bool  // the call asks for acknowledgement (a claim)
	replicas int64 // replicas that acknowledged
	err      error // WAIT's own error (I/O), if any
}

// wants says whether a call of cs needs a WAIT after it on this lane.
func (p ackPolicy) wants(cs []*call) bool {
	if p.n <= 0 {
		return false
	}
	for _, c := range cs {
		if c.ack.want {
			return true
		}
	}
	return false
}

// ackReserve is the time a WAIT leaves, before the earliest deadline of
// the claims it follows, for its reply to come back: a WAIT that outlived
// it would end in a timeout on the socket (and a closed connection)
// rather than in a count of replicas. Redis ends a blocked WAIT at a cron
// tick, up to 100ms late at the default hz of 10.
const ackReserve = 150 * time.Millisecond

// follow queues WAIT after the commands already in pipe when a call of cs
// asks for it, and returns the command (nil when none does). WAIT's
// timeout is the policy's, shortened to end ackReserve before the
// earliest deadline of those calls.
func (p ackPolicy) follow(ctx context.Context, pipe redis.Pipeliner, cs []*call) *redis.IntCmd {
	if !p.wants(cs) {
		return nil
	}
	now := time.Now()
	timeout := p.timeout
	for _, c := range cs {
		if c.ack.want {
			timeout = min(timeout, c.deadline(now).Sub(now)-ackReserve)
		}
	}
	w := redis.NewIntCmd(ctx, "wait", p.n, max(timeout.Milliseconds(), 1))
	_ = pipe.Process(ctx, w)
	return w
}

// settle gives the calls of cs that asked for acknowledgement what w said.
func settle(w *redis.IntCmd, cs []*call) {
	if w == nil {
		return
	}
	for _, c := range cs {
		if c.ack.want {
			c.ack.replicas, c.ack.err = w.Val(), w.Err()
		}
	}
}

// execAcked sends one call and WAIT as a pipeline, on one connection.
func (l *lane) execAcked(ctx context.Context, c *call) {
	cs := []*call{c}
	pipe := l.client.Pipeline()
	_ = pipe.Process(ctx, c.cmd)
	w := l.ack.follow(ctx, pipe, cs)
	_, _ = pipe.Exec(ctx)
	settle(w, cs)
}

// acked checks a won claim's acknowledgements: nil when enough replicas
// acknowledged it (or none are asked for), else an error wrapping
// ErrNotAcked (and WAIT's I/O error, if any).
func (c *call) acked(p ackPolicy) error {
	if !c.ack.want || p.n <= 0 {
		return nil
	}
	if c.ack.err != nil {
		return fmt.Errorf("%w: %w", ErrNotAcked, c.ack.err)
	}
	if c.ack.replicas < int64(p.n) {
		return fmt.Errorf("%w: %d of %d replicas within at most %v", ErrNotAcked, c.ack.replicas, p.n, p.timeout)
	}
	return nil
}

// unhold releases the lease key of a claim that won but was not
// acknowledged, and keeps its mark (the slot stays claimed, by this bid):
// its run must not start, and the job's next slots must not find the lease
// busy and be skipped as overlapping while the claim waits to be retried
// as itself (which finds its mark and takes the lease again) or withdrawn.
// Best effort, bounded by NodeTimeout; when Redis cannot be told, the
// lease expires with its TTL.
func (b *Bid) unhold(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.lk.opts.NodeTimeout)
	defer cancel()
	_ = b.lk.each(cctx, releaseScript, b.claim.releaseLine(b.token, markKeep, "", 0))
}

// ackPolicy is the WAIT of the locker's options.
func (o *Options) ackPolicy() ackPolicy {
	if o.MinReplicasAck <= 0 {
		return ackPolicy{}
	}
	return ackPolicy{n: o.MinReplicasAck, timeout: o.AckTimeout}
}

// checkAck refuses MinReplicasAck where WAIT cannot follow a claim on its
// connection: a Cluster client routes a keyless WAIT to any node.
func checkAck(c Client, o Options) error {
	if o.MinReplicasAck <= 0 {
		return nil
	}
	if _, ok := c.(interface{ Options() *redis.ClusterOptions }); ok {
		return fmt.Errorf("%w: MinReplicasAck needs a standalone or Sentinel client: a Cluster client sends WAIT to any node", ErrInvalid)
	}
	return nil
}
