package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/store"
)

// slotJobs hands out the scheduler's claims for bench jobs: every call
// claims the job's next slot, as a replica does once per firing.
//
// The claim is the one scheduler/fire.go claimFor builds for a job with
// the jobs.yaml defaults (lock_ttl 30s, overlap forbid, catchup_window 1m,
// history 100 / 168h, max_clock_skew 2s): the lease, meta, mark, pause,
// history and running keys of store.JobKeys, the slot with its first
// sight, the running record and the paused, late, aborted and busy skip
// records, each encoded as the scheduler encodes them. One thing differs:
// a job here claims a new slot on every cycle, thousands a second, so its
// slots run on from a base a month in the past, one second per cycle, and
// NotAfter (the end of the claim window on Redis's clock, slot + 1m + 2s
// in the scheduler) is put an hour from now so that all of them are
// within it. The script makes the same checks and writes the same keys.
type slotJobs struct {
	prefix string
	base   time.Time
	until  time.Time // NotAfter of every claim
	next   sync.Map  // job name -> *atomic.Int64, its last slot (seconds after base)
}

func newSlotJobs(prefix string) *slotJobs {
	now := time.Now()
	return &slotJobs{prefix: prefix, base: now.Truncate(time.Second).Add(-30 * 24 * time.Hour), until: now.Add(time.Hour)}
}

// Settings of the bench jobs: the jobs.yaml defaults.
const (
	benchLockTTL = jobs.DefaultLockTTL
	benchCatchup = jobs.DefaultCatchupWindow
	benchMaxSkew = scheduler.DefaultMaxClockSkew
)

// benchRetention is Scheduler.MarkRetention of the bench jobs (no jitter).
var benchRetention = scheduler.MarkRetentionOf(benchMaxSkew, benchCatchup, 0)

// nextSlot is job's next slot.
func (sj *slotJobs) nextSlot(job string) time.Time {
	v, _ := sj.next.LoadOrStore(job, new(atomic.Int64))
	return sj.base.Add(time.Duration(v.(*atomic.Int64).Add(1)) * time.Second)
}

// claim builds replica's claim of (job, slot) as claimFor does.
func (sj *slotJobs) claim(job, replica string, slot time.Time) locker.Claim {
	k := store.JobKeys(sj.prefix, job)
	running := store.Record{Job: job, Slot: slot, Outcome: store.OutcomeRunning, Replica: replica, Started: time.Now()}
	return locker.Claim{
		Key:        k.Lease(),
		MetaKey:    k.Meta(),
		TTL:        benchLockTTL,
		MarkTTL:    benchRetention,
		Retention:  benchRetention,
		Running:    running.Encode(),
		HistoryKey: k.History(),
		HistoryLen: jobs.DefaultHistoryKeep,
		HistoryTTL: jobs.DefaultHistoryMaxAge,
		RunningKey: k.Running(),
		MarkKey:    k.Mark(slot),
		Slot:       slot,
		FirstSeen:  sj.base,
		RingKey:    k.Ring(),
		PauseKey:   k.Paused(),
		NotBefore:  slot,
		NotAfter:   sj.until,
		Records: locker.Records{
			Paused: store.Skip(job, slot, store.ReasonPaused),
			Late:   store.Skip(job, slot, store.ReasonLate),
			Aborted: store.Record{Job: job, Slot: slot, Outcome: store.OutcomeSkipped, Reason: store.ReasonAborted,
				Replica: replica}.Encode(),
			Busy: store.Skip(job, slot, store.ReasonOverlap),
		},
	}
}

// finish ends a won claim with its ok record, as execute does.
func finish(ctx context.Context, lease *locker.Lease, job, replica string, slot, started time.Time) error {
	rec := store.Record{Job: job, Slot: slot, Outcome: store.OutcomeOK, Fence: lease.Fence(), Replica: replica,
		Attempts: 1, Started: started, DurationMS: time.Since(started).Milliseconds()}
	return lease.Finish(ctx, rec.Encode())
}

// slotClaimOps is the scheduler's path for one firing on one replica: the
// claim built and bid (before the slot in the scheduler, here inside the
// cycle), obtained (one EVALSHA, watched: the watchdog starts), and
// finished with the run's record (one EVALSHA). Renew is Lease.Renew of a
// held slot lease (lease and running mark).
func slotClaimOps(name string, l *locker.Locker, sj *slotJobs) lockOps {
	const replica = "r0"
	obtain := func(ctx context.Context, job string) (*locker.Lease, time.Time, error) {
		slot := sj.nextSlot(job)
		bid, err := l.Bid(sj.claim(job, replica, slot))
		if err != nil {
			return nil, slot, err
		}
		lease, err := bid.Obtain(ctx)
		return lease, slot, err
	}
	return lockOps{
		name: name,
		cycle: func(ctx context.Context, job string) error {
			lease, slot, err := obtain(ctx, job)
			if err != nil {
				return err
			}
			return finish(ctx, lease, job, replica, slot, time.Now())
		},
		hold: func(ctx context.Context, job string) (func(context.Context) error, func(), error) {
			lease, slot, err := obtain(ctx, job)
			if err != nil {
				return nil, nil, err
			}
			return lease.Renew, func() { _ = finish(context.Background(), lease, job, replica, slot, time.Now()) }, nil
		},
	}
}

// contendedOps is one firing claimed by three replicas at once, each with
// its own client and locker (as three processes would be): one claim
// wins and finishes, two find the slot claimed (ErrSlotClaimed). A cycle
// is a firing; anything but one winner is an error.
func contendedOps(name string, ls []*locker.Locker, sj *slotJobs) lockOps {
	return lockOps{
		name: name,
		cycle: func(ctx context.Context, job string) error {
			slot := sj.nextSlot(job)
			type res struct {
				lease   *locker.Lease
				replica string
				err     error
			}
			out := make([]res, len(ls))
			var wg sync.WaitGroup
			for i, l := range ls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					replica := "r" + strconv.Itoa(i)
					out[i].replica = replica
					bid, err := l.Bid(sj.claim(job, replica, slot))
					if err == nil {
						out[i].lease, err = bid.Obtain(ctx)
					}
					out[i].err = err
				}()
			}
			wg.Wait()
			var won *res
			for i := range out {
				switch r := &out[i]; {
				case r.err == nil && won == nil:
					won = r
				case r.err == nil:
					return fmt.Errorf("slot %v won twice (%s and %s)", slot, won.replica, r.replica)
				case !errors.Is(r.err, locker.ErrSlotClaimed):
					return r.err
				}
			}
			if won == nil {
				return fmt.Errorf("slot %v: no claim won", slot)
			}
			return finish(ctx, won.lease, job, won.replica, slot, time.Now())
		},
	}
}
