package locker

import (
	"context"
	"fmt"
	"sync"
)

// Each runs fn on every node's client in parallel, each call bounded by
// the locker's NodeTimeout (and ctx), and returns the values of the nodes
// that answered, in node order; it fails with ErrNoQuorum (wrapping the
// nodes' errors) when fewer than a majority did. On one node it is fn on
// that node. Reads and writes of state beside the leases (pause keys,
// history, records) use it, so that in quorum mode they reach a majority,
// not the first node that answers.
func Each[T any](ctx context.Context, l *Locker, fn func(ctx context.Context, c Client) (T, error)) ([]T, error) {
	res := make([]nodeResult[T], len(l.nodes))
	var wg sync.WaitGroup
	for i, n := range l.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, l.opts.NodeTimeout)
			defer cancel()
			v, err := fn(cctx, n.client)
			res[i] = nodeResult[T]{node: i, val: v, err: err}
		}()
	}
	wg.Wait()
	out := make([]T, 0, len(res))
	for _, r := range res {
		if r.err == nil {
			out = append(out, r.val)
		}
	}
	if len(out) < l.quorum {
		if len(l.nodes) == 1 {
			return nil, withCtx(ctx, joinErrs(res))
		}
		return out, withCtx(ctx, fmt.Errorf("%w: %d of %d nodes answered: %w", ErrNoQuorum, len(out), len(l.nodes), joinErrs(res)))
	}
	return out, nil
}
