package main

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// autoPipe batches the commands that concurrent callers send to one client
// the way redcron's locker does (locker/node.go, lane): a call made while
// nothing is in flight runs at once on the caller's goroutine; calls made
// while a round trip is in flight queue, and one flusher goroutine sends
// the queue as one pipeline (at most maxBatch calls, the locker's cap) and
// repeats until it is empty. The batched floor runs through it, so that
// the floor and our locker pay for their round trips in the same way and
// the comparison is of what each round trip carries.
//
// Unlike the locker's lane it keeps no per-call deadline (the bench's
// calls have none) and no NOSCRIPT fallback (the floor's scripts are
// loaded before the measurements).
type autoPipe struct {
	client redis.UniversalClient

	mu    sync.Mutex
	busy  bool
	queue []*pipeCall
}

// maxBatch is the locker's cap on one pipeline (locker/node.go).
const maxBatch = 128

type pipeCall struct {
	cmd  redis.Cmder
	done chan struct{}
}

// do runs cmd, alone or in the next batch, and returns its error.
func (p *autoPipe) do(ctx context.Context, cmd redis.Cmder) error {
	p.mu.Lock()
	if !p.busy {
		p.busy = true
		p.mu.Unlock()
		_ = p.client.Process(ctx, cmd)
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.busy = false
			p.mu.Unlock()
		} else {
			p.mu.Unlock()
			go p.flush()
		}
		return cmd.Err()
	}
	c := &pipeCall{cmd: cmd, done: make(chan struct{})}
	p.queue = append(p.queue, c)
	p.mu.Unlock()
	<-c.done
	return cmd.Err()
}

// flush sends the queue in batches until it is empty, then exits.
func (p *autoPipe) flush() {
	for {
		p.mu.Lock()
		batch := p.queue
		if len(batch) == 0 {
			p.busy = false
			p.mu.Unlock()
			return
		}
		if len(batch) > maxBatch {
			batch, p.queue = batch[:maxBatch:maxBatch], append([]*pipeCall(nil), batch[maxBatch:]...)
		} else {
			p.queue = nil
		}
		p.mu.Unlock()

		pipe := p.client.Pipeline()
		for _, c := range batch {
			_ = pipe.Process(context.Background(), c.cmd)
		}
		_, _ = pipe.Exec(context.Background())
		for _, c := range batch {
			close(c.done)
		}
	}
}
