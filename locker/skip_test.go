package locker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

// scriptCalls counts the script calls a client sends (pipelined or not),
// by the key names of their line (the locker's calling convention); not
// the calls rerun as EVAL after NOSCRIPT.
type scriptCalls struct {
	names string
	n     atomic.Int64
}

func (h *scriptCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

func (h *scriptCalls) count(cmd redis.Cmder) {
	a := cmd.Args()
	if cmd.Name() != "evalsha" || len(a) < 4 {
		return
	}
	if nk, _ := strconv.Atoi(fmt.Sprint(a[2])); len(a) > 3+nk && fmt.Sprint(a[3+nk]) == h.names {
		h.n.Add(1)
	}
}

// TestRecordSkips: skips recorded at once share script calls (up to 64
// each on one server, whatever their jobs), and each is still its own
// decision: recorded, claimed, early, late or unborn, in one call.
func TestRecordSkips(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{})
	c := newClient(t, s)
	calls := &scriptCalls{names: "mark,meta,history"}
	c.AddHook(calls)
	l := mustNew(t, c, locker.Options{})
	base := time.Now().Truncate(time.Second).Add(-time.Minute)
	tag := func(job string) string { return "redcron:{" + t.Name() + "-" + job + "}" }
	skip := func(job string, slot time.Time) locker.Skip {
		return locker.Skip{MarkKey: markOf(tag(job)+":run", slot), MetaKey: tag(job) + ":meta", Slot: slot,
			FirstSeen: base.Add(-time.Hour), Record: "skipped:late:" + unix(slot),
			Retention: time.Hour, NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute),
			HistoryKey: tag(job) + ":history", HistoryLen: 100, HistoryTTL: time.Hour}
	}

	// 150 skips of 5 jobs, 30 slots each; among them one claimed slot, one
	// early, one late, and job j4's first 10 slots, before its first sight.
	var ss []locker.Skip
	for j := range 5 {
		for k := range 30 {
			ss = append(ss, skip(fmt.Sprintf("j%d", j), base.Add(time.Duration(k)*time.Second)))
		}
	}
	const claimed, early, late, firstBorn = 3, 40, 77, 130
	cl := slotClaim(tag("j0")+":run", ss[claimed].MetaKey, ss[claimed].Slot)
	cl.FirstSeen = base.Add(-time.Hour)
	mustObtain(t, l, cl)
	ss[early].NotBefore = time.Now().Add(5 * time.Second)
	ss[late].NotAfter = time.Now().Add(-time.Second)
	must(t, c.HSet(bg, ss[firstBorn].MetaKey, "first", unix(ss[firstBorn].Slot)).Err())

	errs := l.RecordSkips(bg, ss)
	if got := calls.n.Load(); got != 3 {
		t.Errorf("script calls for 150 skips: got %d, want 3 (64 a call)", got)
	}
	for i, err := range errs {
		var want error
		switch {
		case i == claimed:
			want = locker.ErrSlotClaimed
		case i == early:
			want = locker.ErrEarly
		case i == late:
			want = locker.ErrLate
		case i >= 120 && i < firstBorn:
			want = locker.ErrUnborn // before j4's first sight
		}
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("skip %d (%s): got %v, want %v", i, ss[i].MarkKey, err, want)
			continue
		}
		recorded := hget(t, c, ss[i].MarkKey, "end") == ss[i].Record
		if recorded != (want == nil) {
			t.Errorf("skip %d: mark end recorded %v, want %v", i, recorded, want == nil)
		}
	}
	var ne *locker.NotObtainedError
	if !errors.As(errs[early], &ne) || ne.Wait < 4*time.Second {
		t.Errorf("early skip: got %v, want a wait of about 5s", errs[early])
	}
	if got := len(lrange(t, c, ss[0].HistoryKey)); got != 29 {
		t.Errorf("history of j0: got %d records, want 29 (30 slots, one claimed)", got)
	}

	// Skips without a history go in calls of their own shape.
	plain := &scriptCalls{names: "mark,meta"}
	c.AddHook(plain)
	ss = ss[:0]
	for k := range 3 {
		sk := skip("plain", base.Add(time.Duration(k)*time.Second))
		sk.HistoryKey = ""
		ss = append(ss, sk, skip("mixed", base.Add(time.Duration(k)*time.Second)))
	}
	before := calls.n.Load()
	for i, err := range l.RecordSkips(bg, ss) {
		if err != nil {
			t.Errorf("skip %d: got %v, want nil", i, err)
		}
	}
	if got, gotH := plain.n.Load(), calls.n.Load()-before; got != 1 || gotH != 1 {
		t.Errorf("script calls: got %d without history and %d with, want 1 and 1", got, gotH)
	}
	if exists(t, c, tag("plain")+":history") {
		t.Errorf("a skip without a history key wrote one")
	}
}

// TestRecordSkipsCluster: on a Redis Cluster a script cannot name keys of
// two hash slots, so skips share a call only with skips of the same hash
// tag: the skips of 30 jobs spread over 3 masters are all recorded, in a
// call per job.
func TestRecordSkipsCluster(t *testing.T) {
	t.Parallel()
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	calls := &scriptCalls{names: "mark,meta,history"}
	c.AddHook(calls)
	l := mustNew(t, c, locker.Options{})
	slot := time.Now().Truncate(time.Second).Add(-time.Minute)
	var ss []locker.Skip
	for j := range 30 {
		tag := fmt.Sprintf("redcron:{%s-j%02d}", t.Name(), j)
		for k := range 3 {
			s := slot.Add(time.Duration(k) * time.Second)
			ss = append(ss, locker.Skip{MarkKey: markOf(tag+":run", s), MetaKey: tag + ":meta", Slot: s, Record: "skipped:late",
				Retention: time.Hour, NotBefore: time.Now().Add(-time.Second), NotAfter: time.Now().Add(time.Minute),
				HistoryKey: tag + ":history", HistoryLen: 10, HistoryTTL: time.Hour})
		}
	}
	for i, err := range l.RecordSkips(bg, ss) {
		if err != nil {
			t.Errorf("skip %d (%s): got %v, want nil", i, ss[i].MarkKey, err)
		}
	}
	if got := calls.n.Load(); got != 30 {
		t.Errorf("script calls: got %d, want 30 (one per job's hash tag)", got)
	}
	for _, sk := range ss {
		if got, err := c.HGet(bg, sk.MarkKey, "end").Result(); err != nil || got != sk.Record {
			t.Errorf("%s end: got %q, %v; want %q", sk.MarkKey, got, err, sk.Record)
		}
	}
}
