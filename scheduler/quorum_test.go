package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// TestQuorumExactlyOnce runs three instances over a quorum of three
// independent masters: every slot is claimed by all three at the same
// instant, so the masters' votes can split. Each (job, slot) must still run
// exactly once, none may be missed, and fences must follow slots.
func TestQuorumExactlyOnce(t *testing.T) {
	t.Parallel()
	servers := []*redistest.Server{
		redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}),
	}
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{sleep: 20 * time.Millisecond})
	var js []*jobs.Job
	for i := range 10 {
		js = append(js, testJob(t, fmt.Sprintf("q%02d", i), "* * * * * *", fn, nil))
	}
	begin := nextSecond(0)
	waitUntil(begin.Add(-300 * time.Millisecond))
	for i := range 3 {
		clients := make([]locker.Client, len(servers))
		for n, srv := range servers {
			clients[n] = newClient(t, srv)
		}
		q, err := locker.NewQuorum(clients, locker.Options{Retries: 3, RetryDelay: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		logger := testLogger(t, zerolog.WarnLevel)
		s, err := New(js, q, Options{Replica: fmt.Sprintf("r%d", i), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: got %v, want nil", err)
			}
		})
	}
	end := begin.Add(10 * time.Second)
	waitUntil(end.Add(time.Second))
	got := checkOnce(t, l.snapshot(), begin.Add(2*time.Second))
	missed, byReplica := 0, map[string]int{}
	for _, j := range js {
		for s := begin.Add(2 * time.Second); !s.After(end); s = s.Add(time.Second) {
			if e, ok := got[j.Name][s.Unix()]; ok {
				byReplica[e.replica]++
			} else {
				missed++
				var marks []string
				for n, srv := range servers {
					h, _ := srv.Client(t).HGetAll(context.Background(), store.JobKeys("", j.Name).Mark(s)).Result()
					marks = append(marks, fmt.Sprintf("node %d: %v", n, h))
				}
				t.Errorf("job %s slot %v: got no run, want one; marks: %v", j.Name, s.UTC(), marks)
			}
		}
	}
	t.Logf("runs by replica: %v, missed %d", byReplica, missed)
}
