package main

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/jobs"
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

// keyedLocker is gocron's locker at its best: one key per job and second,
// SET <job>:<second> <replica> NX EX 2, never released (it expires by
// itself), so a replica whose timer fires later in the same second finds
// the key: one command per replica per firing. The second is the
// replica's clock rounded to the nearest second (gocron does not tell a
// locker which run it is for).
type keyedLocker struct {
	c       *redis.Client
	clk     clockwork.Clock
	replica string
}

var errTaken = errors.New("taken")

func (l keyedLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	sec := l.clk.Now().Round(time.Second).Unix()
	ok, err := l.c.SetNX(ctx, key+":"+strconv.FormatInt(sec, 10), l.replica, 2*time.Second).Result()
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errTaken
	}
	return noUnlock{}, nil
}

type noUnlock struct{}

func (noUnlock) Unlock(context.Context) error { return nil }

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

type gocronReplica struct {
	s gocron.Scheduler
	c *redis.Client
}

// startGocron starts one gocron v2 scheduler with the jobs of cfg (their
// names and cron specs, with seconds) and the system's locker on
// client c. gocron cannot tell a job its slot: the ledger takes the
// replica's clock at the job's start, rounded to the nearest second.
func startGocron(spec childSpec, cfg *jobs.Config, rec *recorder, c *redis.Client) (*gocronReplica, error) {
	clk := offsetClockwork{clockwork.NewRealClock(), spec.Offset}
	var lk gocron.Locker = redsyncLocker{redsync.New(goredis.NewPool(c))}
	if spec.System == sysGocronKeyed {
		lk = keyedLocker{c: c, clk: clk, replica: replicaName(spec.Replica)}
	}
	s, err := gocron.NewScheduler(gocron.WithClock(clk), gocron.WithLocation(time.UTC), gocron.WithDistributedLocker(lk))
	if err != nil {
		return nil, err
	}
	for _, j := range cfg.Jobs {
		name := j.Name
		_, err := s.NewJob(gocron.CronJob(j.Spec, true), gocron.NewTask(func() {
			start := time.Now()
			rec.add(name, clk.Now().Round(time.Second), 0, start)
		}), gocron.WithName(name))
		if err != nil {
			_ = s.Shutdown()
			return nil, err
		}
	}
	s.Start()
	return &gocronReplica{s: s, c: c}, nil
}

func (g *gocronReplica) stop() error {
	err := g.s.Shutdown()
	if cerr := g.c.Close(); err == nil {
		err = cerr
	}
	return err
}
