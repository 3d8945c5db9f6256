package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
)

// tracingLocker records, for -trace, when each claim was prepared (the
// firing's claim begins) relative to its slot.
type tracingLocker struct {
	next   *locker.Locker
	mu     sync.Mutex
	called []time.Duration
}

func (t *tracingLocker) Bid(c locker.Claim) (*locker.Bid, error) {
	now := time.Now()
	if !c.Slot.IsZero() && now.Sub(c.Slot) <= 400*time.Millisecond { // not the catch-up slot at start
		t.mu.Lock()
		t.called = append(t.called, now.Sub(c.Slot))
		t.mu.Unlock()
	}
	return t.next.Bid(c)
}

func (t *tracingLocker) ServerClock(ctx context.Context, now func() time.Time) (locker.ServerClock, error) {
	return t.next.ServerClock(ctx, now)
}

func (t *tracingLocker) RecordSkip(ctx context.Context, s locker.Skip) error {
	return t.next.RecordSkip(ctx, s)
}

var _ scheduler.Locker = (*tracingLocker)(nil)

func (t *tracingLocker) report(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range []struct {
		n string
		d []time.Duration
	}{{"claim began", t.called}} {
		sort.Slice(x.d, func(i, j int) bool { return x.d[i] < x.d[j] })
		fmt.Fprintf(os.Stderr, "  trace %s: %s - slot p1 %v p50 %v p99 %v max %v (n %d)\n", name, x.n,
			pct(x.d, 1), pct(x.d, 50), pct(x.d, 99), pct(x.d, 100), len(x.d))
	}
}
