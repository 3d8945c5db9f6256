package locker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ServerClock is a measurement of the server's clock against a local one.
type ServerClock struct {
	// Offset is server time minus local time, corrected for the round trip
	// (the server is assumed to have read its clock half way through it).
	// In quorum mode it is the median of the nodes that answered.
	Offset time.Duration
	// RTT is the round trip of the sample used (the largest among the
	// nodes' best samples in quorum mode): Offset is exact within RTT/2.
	RTT time.Duration
	// Nodes is how many nodes answered.
	Nodes int
}

// clockSamples is how many TIME round trips each node gets per
// measurement; the one with the shortest round trip is used.
const clockSamples = 3

// ServerClock measures the offset of the servers' clocks (TIME) to now,
// the caller's clock (which may differ from time.Now, e.g. a scheduler's
// injected clock): each node is asked clockSamples times, in parallel
// across nodes, each call bounded by NodeTimeout. It fails with the I/O
// error, or ErrNoQuorum when fewer than a majority of nodes answered.
func (l *Locker) ServerClock(ctx context.Context, now func() time.Time) (ServerClock, error) {
	type sample struct {
		offset, rtt time.Duration
		err         error
	}
	res := make([]sample, len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			best := sample{rtt: -1}
			for range clockSamples {
				cctx, cancel := context.WithTimeout(ctx, l.opts.NodeTimeout)
				cmd := redis.NewTimeCmd(cctx, "time")
				t0, m0 := now(), time.Now()
				err := n.client.Process(cctx, cmd)
				rtt := time.Since(m0)
				cancel()
				if err != nil {
					best.err = err
					continue
				}
				if best.rtt < 0 || rtt < best.rtt {
					best = sample{offset: cmd.Val().Sub(t0.Add(rtt / 2)), rtt: rtt}
				}
			}
			if best.rtt >= 0 {
				best.err = nil
			}
			res[i] = best
		}()
	}
	wg.Wait()
	var offs []time.Duration
	var sc ServerClock
	var errs []nodeResult[struct{}]
	for i, s := range res {
		if s.err != nil {
			errs = append(errs, nodeResult[struct{}]{node: i, err: s.err})
			continue
		}
		offs = append(offs, s.offset)
		sc.RTT = max(sc.RTT, s.rtt)
	}
	sc.Nodes = len(offs)
	if len(offs) < l.quorum {
		if len(l.nodes) == 1 {
			return sc, withCtx(ctx, fmt.Errorf("locker: server time: %w", joinErrs(errs)))
		}
		return sc, withCtx(ctx, fmt.Errorf("locker: server time: %w: %d of %d nodes answered: %w", ErrNoQuorum, len(offs), len(l.nodes), joinErrs(errs)))
	}
	slices.Sort(offs)
	sc.Offset = offs[(len(offs)-1)/2]
	return sc, nil
}
