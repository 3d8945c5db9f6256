package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
)

// fakeClaims (-fake, with -trace) answers every claim "slot claimed" at
// once, without Redis: it times the scheduler's dispatch alone.
var fakeClaims bool

// tracingLocker records, for -trace, when each Obtain was called and when
// it returned, relative to its slot (parsed from the mark key).
type tracingLocker struct {
	next   scheduler.Locker
	mu     sync.Mutex
	called []time.Duration
	ret    []time.Duration
}

func (t *tracingLocker) Obtain(ctx context.Context, c locker.Claim) (*locker.Lease, error) {
	now := time.Now()
	i := strings.LastIndexByte(c.MarkKey, ':')
	sec, _ := strconv.ParseInt(c.MarkKey[i+1:], 10, 64)
	slot := time.Unix(sec, 0)
	var l *locker.Lease
	var err error
	if fakeClaims {
		err = &locker.NotObtainedError{Reason: locker.ErrSlotClaimed}
	} else {
		l, err = t.next.Obtain(ctx, c)
	}
	end := time.Now()
	if now.Sub(slot) > 400*time.Millisecond {
		return l, err // the catch-up slot at start
	}
	t.mu.Lock()
	t.called = append(t.called, now.Sub(slot))
	t.ret = append(t.ret, end.Sub(slot))
	t.mu.Unlock()
	return l, err
}

func (t *tracingLocker) report(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range []struct {
		n string
		d []time.Duration
	}{{"obtain called", t.called}, {"obtain returned", t.ret}} {
		sort.Slice(x.d, func(i, j int) bool { return x.d[i] < x.d[j] })
		fmt.Fprintf(os.Stderr, "  trace %s: %s - slot p1 %v p50 %v p99 %v max %v (n %d)\n", name, x.n,
			pct(x.d, 1), pct(x.d, 50), pct(x.d, 99), pct(x.d, 100), len(x.d))
	}
}
