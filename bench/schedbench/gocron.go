package main

import (
	"context"
	"strconv"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
)

// redsyncLocker is the usual gocron v2 distributed locker on go-redsync (the
// shape of go-co-op/gocron-redis-lock): one redsync mutex per job name, one
// try (a loser must not retry and run after the winner unlocks), redsync's
// default 8 s expiry; gocron unlocks when the job returns.
type redsyncLocker struct{ rs *redsync.Redsync }

func (l redsyncLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	mu := l.rs.NewMutex(key, redsync.WithTries(1))
	if err := mu.LockContext(ctx); err != nil {
		return nil, err
	}
	return redsyncLock{mu}, nil
}

type redsyncLock struct{ mu *redsync.Mutex }

func (l redsyncLock) Unlock(ctx context.Context) error {
	_, err := l.mu.UnlockContext(ctx)
	return err
}

// offsetClockwork is the real clock with Now shifted by off: gocron reads
// Now to compute each next run and arms real timers for next - Now, so the
// replica fires off early (off > 0).
type offsetClockwork struct {
	clockwork.Clock
	off time.Duration
}

func (c offsetClockwork) Now() time.Time                  { return c.Clock.Now().Add(c.off) }
func (c offsetClockwork) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c offsetClockwork) Until(t time.Time) time.Duration { return t.Sub(c.Now()) }

type gocronRun struct{ scheds []gocron.Scheduler }

// startGocron starts one gocron v2 scheduler per client, each with the same
// jobs (cron spec with seconds) and a redsync locker on its own client.
// gocron cannot tell a job its slot: the ledger takes the replica's clock at
// the job's start, rounded to the nearest second.
func startGocron(clients []*redis.Client, nJobs int, spec string, offsets []time.Duration, l *ledger) (*gocronRun, error) {
	g := &gocronRun{}
	for r, c := range clients {
		clk := offsetClockwork{clockwork.NewRealClock(), offsets[r]}
		s, err := gocron.NewScheduler(
			gocron.WithClock(clk),
			gocron.WithLocation(time.UTC),
			gocron.WithDistributedLocker(redsyncLocker{redsync.New(goredis.NewPool(c))}),
		)
		if err != nil {
			return nil, err
		}
		g.scheds = append(g.scheds, s)
		for j := range nJobs {
			rep, job := int32(r), int32(j)
			_, err := s.NewJob(gocron.CronJob(spec, true), gocron.NewTask(func() {
				start := time.Now()
				own := clk.Now()
				slot := own.Add(500 * time.Millisecond).Truncate(time.Second)
				l.add(entry{job: job, replica: rep, slot: slot.Unix(), start: start, lagOwn: own.Sub(slot)})
			}), gocron.WithName("job"+strconv.Itoa(j)))
			if err != nil {
				return nil, err
			}
		}
	}
	for _, s := range g.scheds {
		s.Start()
	}
	return g, nil
}

func (g *gocronRun) stop() error {
	var first error
	for _, s := range g.scheds {
		if err := s.Shutdown(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
