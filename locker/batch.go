package locker

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batches: the script calls that a lane sends together travel as one call
// of batch.lua (see scripts.go), on a server that holds every key. Redis
// then reads, dispatches and answers one command instead of up to
// maxBatch; each call still gets its own reply, error, acknowledgements
// and NOSCRIPT fallback, as when sent alone.

// combine returns the calls to send for live, written at now within ctx:
// each run of consecutive calls of named scripts becomes one call of
// batch.lua that carries them (its parts), which costs Redis one command
// instead of one for each (measured in bench/README.md). The order of the
// calls, and so of one caller's calls, stays as queued.
func combine(ctx context.Context, now time.Time, live []*call) []*call {
	out := make([]*call, 0, len(live))
	for i := 0; i < len(live); {
		j := i
		for j < len(live) && live[j].script != nil && live[j].script.name != "" {
			j++
		}
		if j-i < 2 {
			out = append(out, live[i])
			i++
			continue
		}
		out = append(out, carrier(ctx, now, live[i:j]))
		i = j
	}
	return out
}

// carrier is the batch.lua call that carries parts: it asks for replica
// acknowledgements when one of them does, with the earliest bound of
// those.
func carrier(ctx context.Context, now time.Time, parts []*call) *call {
	// Each part's line is "evalsha", sha, nkeys, keys..., arguments...; in
	// batch.lua's, its keys join the keys, and its script's name, nkeys and
	// number of arguments (three, as its line's head) head its arguments.
	nk, na := 3, 1
	for _, p := range parts {
		args := p.cmd.Args()
		nk += args[2].(int)
		na += len(args) - args[2].(int)
	}
	// One slice, filled in two passes (every part's keys, then every
	// part's head and arguments), rather than the arguments gathered apart
	// and copied behind the keys: a batch's line is its parts' lines again.
	line := make([]any, 3, nk+na)
	line[0], line[1] = "evalsha", batchScript.sha
	c := &call{ctx: ctx, script: batchScript, parts: parts, written: now}
	for _, p := range parts {
		args := p.cmd.Args()
		line = append(line, args[3:3+args[2].(int)]...)
		if p.ack.want {
			if d := p.deadline(now).Sub(now); !c.ack.want || d < c.timeout {
				c.timeout = d
			}
			c.ack.want = true
		}
	}
	line[2] = len(line) - 3
	line = append(line, len(parts))
	for _, p := range parts {
		args := p.cmd.Args()
		nk := args[2].(int)
		line = append(line, p.script.name, nk, len(args)-3-nk)
		line = append(line, args[3+nk:]...)
	}
	c.cmd = redis.NewCmd(ctx, line...)
	return c
}

// answerParts gives each part of a batch.lua call its own reply, error or
// acknowledgements; a call that carries none is left as it is.
func (c *call) answerParts() {
	if c.parts == nil {
		return
	}
	replies, err := c.cmd.Slice()
	if err == nil && len(replies) != len(c.parts) {
		// Not by batch.lua, which answers every call (a script's bug).
		err = fmt.Errorf("locker: batch of %d calls answered with %d replies", len(c.parts), len(replies))
	}
	for i, p := range c.parts {
		if p.ack.want {
			p.ack = c.ack
		}
		if err != nil {
			p.cmd.SetErr(err)
		} else if e, ok := replies[i].(error); ok {
			p.cmd.SetErr(e)
		} else {
			p.cmd.SetVal(replies[i])
		}
	}
}
