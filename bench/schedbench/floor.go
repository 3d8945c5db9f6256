package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/jobs"
)

// The floor's timings: claims go out floorAhead before their slot (as
// redcron's do when no claim is slow), every call is bounded by
// floorTimeout (the jobs.yaml read timeout), and keys expire after
// floorTTL.
const (
	floorAhead   = 100 * time.Millisecond
	floorTimeout = 500 * time.Millisecond
	floorTTL     = 10 * time.Second
)

// floorReplica is the least a replica can do to run each firing once while
// sharing the work, the floor beside which the compare and rate suites put
// redcron (at 1,000 and 10,000 firings a second):
// for every second, the jobs it is preferred for (a rendezvous hash of job
// and slot over the R replicas) are claimed in one pipeline of SET
// <job>:<slot> NX PX sent floorAhead before the slot; at the slot, on
// Redis's clock, each won claim starts a goroutine that records the run;
// once they have, one pipeline of SET <job>:<slot>:end finishes them. No
// step-in, fencing token, history, pause, catch-up, retry or log: it
// measures the fire lag and the costs that the machine sets at this rate.
// Jobs must run every second.
type floorReplica struct {
	c      *redis.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// startFloor starts the floor's loop for replica spec.Replica of
// spec.Replicas on client c, after reading its clock's offset to Redis's.
func startFloor(spec childSpec, cfg *jobs.Config, rec *recorder, c *redis.Client) (*floorReplica, error) {
	names := make([]string, len(cfg.Jobs))
	for i, j := range cfg.Jobs {
		if j.Spec != "* * * * * *" {
			return nil, fmt.Errorf("floor: job %s: spec %q: the floor runs only jobs every second", j.Name, j.Spec)
		}
		names[i] = j.Name
	}
	now := func() time.Time { return time.Now().Add(spec.Offset) }
	off, err := redisOffset(c, now)
	if err != nil {
		return nil, fmt.Errorf("floor: reading Redis's clock: %w", err)
	}
	redisNow := func() time.Time { return now().Add(off) }
	ctx, cancel := context.WithCancel(context.Background())
	f := &floorReplica{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.loop(ctx, names, spec.Replica, spec.Replicas, rec, redisNow)
	}()
	return f, nil
}

// redisOffset is Redis's clock minus now, from the quickest of 5 TIME
// calls (each bounded by floorTimeout), taken at its round trip's middle.
func redisOffset(c *redis.Client, now func() time.Time) (time.Duration, error) {
	var best, off time.Duration
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), floorTimeout)
		sent := now()
		t, err := c.Time(ctx).Result()
		got := now()
		cancel()
		if err != nil {
			return 0, err
		}
		if rtt := got.Sub(sent); i == 0 || rtt < best {
			best, off = rtt, t.Sub(sent.Add(rtt/2))
		}
	}
	return off, nil
}

// loop runs the floor's seconds until ctx ends.
func (f *floorReplica) loop(ctx context.Context, names []string, replica, replicas int, rec *recorder, redisNow func() time.Time) {
	slot := redisNow().Truncate(time.Second).Add(time.Second)
	mine := make([]string, 0, len(names))
	claims := make([]*redis.BoolCmd, 0, len(names))
	for ; ; slot = slot.Add(time.Second) {
		if !sleepCtx(ctx, slot.Add(-floorAhead).Sub(redisNow())) {
			return
		}
		sec := slot.Unix()
		mine = mine[:0]
		for _, n := range names {
			if preferred(n, sec, replicas) == replica {
				mine = append(mine, n)
			}
		}
		claims = claims[:0]
		cctx, cancel := context.WithTimeout(ctx, floorTimeout)
		_, _ = f.c.Pipelined(cctx, func(p redis.Pipeliner) error {
			for _, n := range mine {
				claims = append(claims, p.SetNX(cctx, floorKey(n, sec), replica, floorTTL))
			}
			return nil
		})
		cancel()
		if !sleepCtx(ctx, slot.Sub(redisNow())) {
			return
		}
		var wg sync.WaitGroup
		won := mine[:0]
		for i, n := range mine {
			if !claims[i].Val() {
				continue
			}
			won = append(won, n)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec.add(n, slot, 0, time.Now())
			}()
		}
		wg.Wait()
		fctx, cancel := context.WithTimeout(ctx, floorTimeout)
		_, _ = f.c.Pipelined(fctx, func(p redis.Pipeliner) error {
			for _, n := range won {
				p.Set(fctx, floorKey(n, sec)+":end", replica, floorTTL)
			}
			return nil
		})
		cancel()
	}
}

// preferred is the replica (0 to replicas-1) that the rendezvous hash of
// job and sec prefers: the highest of FNV-1a(job, sec) mixed with each
// replica's number by SplitMix64's finalizer. It is the scheme of
// scheduler/share.go's rendezvousKey (unexported, and keyed by replica
// name), written again here because the bench module sees only the
// exported API.
func preferred(job string, sec int64, replicas int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(job))
	_, _ = h.Write([]byte(strconv.FormatInt(sec, 10)))
	base := h.Sum64()
	best, bestH := 0, uint64(0)
	for r := range replicas {
		if v := mix64(base ^ (uint64(r+1) * 0x9e3779b97f4a7c15)); r == 0 || v > bestH {
			best, bestH = r, v
		}
	}
	return best
}

// mix64 is SplitMix64's finalizer: every input bit moves every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// floorKey is the claim key of job's slot sec.
func floorKey(job string, sec int64) string {
	return "floor:" + job + ":" + strconv.FormatInt(sec, 10)
}

// sleepCtx sleeps for d (none if d <= 0); false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop ends the loop and closes the client.
func (f *floorReplica) stop() error {
	f.cancel()
	<-f.done
	return f.c.Close()
}
