package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// TestCluster: two replicas on a Redis Cluster of three masters. The jobs'
// keys spread over the masters (one hash tag per job), every slot runs
// once, the work is shared (the beats' keys share one tag), and the
// ledger and the live replicas read back through the store.
func TestCluster(t *testing.T) {
	t.Parallel()
	nodes := redistest.StartCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
	}
	newLockerC := func() *locker.Locker {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		l, err := locker.New(c, locker.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 10 * time.Millisecond})
	var js []*jobs.Job
	for i := range 30 {
		js = append(js, testJob(t, fmt.Sprintf("cl%02d", i), "* * * * * *", fn, nil))
	}
	begin := nextSecond(0)
	a := runScheduler(t, js, newLockerC(), Options{Replica: "a"})
	runScheduler(t, js, newLockerC(), Options{Replica: "b"})
	end := begin.Add(6 * time.Second)
	waitUntil(end.Add(time.Second))

	per := checkEvery(t, l.snapshot(), js, begin.Add(2*time.Second), end)
	t.Logf("runs per replica %v", per)
	if per["a"] == 0 || per["b"] == 0 {
		t.Errorf("runs per replica %v: want both to share the work", per)
	}
	// The marks are on more than one master.
	holding := 0
	for _, n := range nodes {
		if keys, _ := n.Client(t).Keys(context.Background(), "redcron:*:meta").Result(); len(keys) > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("masters holding job keys: got %d, want the jobs spread over several", holding)
	}
	recs, err := a.store.History(context.Background(), "cl07", store.Page{Limit: 3})
	if err != nil || len(recs) != 3 {
		t.Errorf("history of cl07 through the store: got %d records, %v; want 3", len(recs), err)
	}
	// The registrations' digests are read in one MGET: their keys share
	// a hash slot. Twice: read, then found unchanged.
	for i := range 2 {
		reps, err := a.store.Replicas(context.Background())
		if err != nil || len(reps) != 2 || len(reps[0].Jobs) != len(js) || len(reps[1].Jobs) != len(js) {
			t.Errorf("live replicas through the store, read %d: got %d, %v; want a and b with %d jobs each", i+1, len(reps), err, len(js))
		}
	}
	// A replica's registration and digest (two hash slots) go when it
	// unregisters.
	ctx := context.Background()
	if err := a.store.Heartbeat(ctx, store.NewRegistration(store.Replica{Replica: "z"}), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.store.Unregister(ctx, "z"); err != nil {
		t.Errorf("unregister on a Cluster: %v", err)
	}
	for _, n := range nodes {
		if keys, _ := n.Client(t).Keys(ctx, "redcron:*z").Result(); len(keys) > 0 {
			t.Errorf("keys left after z unregistered: %v", keys)
		}
	}
}
