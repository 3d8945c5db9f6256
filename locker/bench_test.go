package locker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
)

// The benchmarks profile the lock cycle (Obtain + Release of an unwatched
// lease) beside the floor, a bare SET NX PX then an EVALSHA
// compare-and-delete, and the slot cycle (a slot claim with its mark, then
// Finish); bench/lockbench prints the comparison. Run with
//
//	go test -run '^$' -bench Cycle -cpuprofile cpu.out ./locker/

var floorDel = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)

const benchTTL = 10 * time.Second

func benchClients(b *testing.B, n int) []*redis.Client {
	b.Helper()
	cs := make([]*redis.Client, n)
	for i := range cs {
		s := redistest.Start(b, redistest.Options{})
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: 64, MaxRetries: -1, ContextTimeoutEnabled: true,
			ReadTimeout: time.Second, WriteTimeout: time.Second})
		b.Cleanup(func() { _ = c.Close() })
		cs[i] = c
	}
	return cs
}

func benchQuorum(b *testing.B, n int) *locker.Locker {
	b.Helper()
	return newQuorum(b, benchClients(b, n), locker.Options{})
}

// runCycles runs cycle on a key per goroutine, sequentially or with
// b.RunParallel; each call gets its own sequence number.
func runCycles(b *testing.B, parallel bool, cycle func(ctx context.Context, tag string, n int64) error) {
	b.Helper()
	ctx := context.Background()
	var id, seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		tag := "{" + b.Name() + "}"
		for b.Loop() {
			if err := cycle(ctx, tag, seq.Add(1)); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		tag := "{" + b.Name() + ":" + strconv.FormatInt(id.Add(1), 10) + "}"
		for pb.Next() {
			if err := cycle(ctx, tag, seq.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func oursCycle(l *locker.Locker) func(context.Context, string, int64) error {
	return func(ctx context.Context, tag string, _ int64) error {
		lease, err := l.Obtain(ctx, locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: benchTTL, Unwatched: true})
		if err != nil {
			return err
		}
		return lease.Release(ctx)
	}
}

// slotCycle claims a new slot each call (high-water, mark) and finishes it.
func slotCycle(l *locker.Locker) func(context.Context, string, int64) error {
	base := time.Now().Truncate(time.Second).Add(-24 * time.Hour)
	return func(ctx context.Context, tag string, n int64) error {
		slot := base.Add(time.Duration(n) * time.Second)
		c := locker.Claim{Key: tag + ":run", MetaKey: tag + ":meta", TTL: benchTTL, Unwatched: true,
			MarkKey: tag + ":slot:" + unix(slot), MarkTTL: time.Minute, Retention: time.Minute, Running: "running",
			Slot: slot, FirstSeen: base, Records: recs}
		lease, err := l.Obtain(ctx, c)
		if err != nil {
			return err
		}
		return lease.Finish(ctx, "done:ok")
	}
}

func floorCycle(c *redis.Client) func(context.Context, string, int64) error {
	return func(ctx context.Context, tag string, _ int64) error {
		var b [16]byte
		_, _ = rand.Read(b[:])
		tok := hex.EncodeToString(b[:])
		key := tag + ":run"
		if err := c.SetNX(ctx, key, tok, benchTTL).Err(); err != nil {
			return err
		}
		return floorDel.Run(ctx, c, []string{key}, tok).Err()
	}
}

func BenchmarkCycle(b *testing.B) {
	for _, par := range []bool{false, true} {
		name := "x1"
		if par {
			name = "xN"
		}
		b.Run("floor/"+name, func(b *testing.B) {
			runCycles(b, par, floorCycle(benchClients(b, 1)[0]))
		})
		b.Run("single/"+name, func(b *testing.B) {
			runCycles(b, par, oursCycle(mustNew(b, benchClients(b, 1)[0], locker.Options{})))
		})
		b.Run("single-slot/"+name, func(b *testing.B) {
			runCycles(b, par, slotCycle(mustNew(b, benchClients(b, 1)[0], locker.Options{})))
		})
		b.Run("quorum5/"+name, func(b *testing.B) {
			runCycles(b, par, oursCycle(benchQuorum(b, 5)))
		})
	}
}
