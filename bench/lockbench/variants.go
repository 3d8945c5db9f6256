package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

// ttl is the lease length of the plain locks.
const ttl = 10 * time.Second

// Names of the variants that other rows are compared with.
const (
	floorName          = "floor (SET NX PX + EVALSHA del)"
	batchedFloorName   = "floor, auto-pipelined like ours"
	oursName           = "redcron, 1 node (fence incl.)"
	slotName           = "redcron, scheduler claim + finish"
	contendedFloorName = "floor, contended (3 x SET slot NX PX)"
	contendedName      = "redcron, contended claim (3 replicas) + finish"
)

func quorumName(n int) string { return fmt.Sprintf("redcron, quorum of %d", n) }

func redsyncName(n int, failFast bool) string {
	s := fmt.Sprintf("go-redsync, %d pools", n)
	if n == 1 {
		s = "go-redsync, 1 pool"
	}
	if failFast {
		s += ", WithFailFast"
	}
	return s
}

var (
	floorRelease = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
	floorRenew   = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
)

// loadScripts loads the floor's scripts, which the batched floor sends as
// EVALSHA without a NOSCRIPT fallback.
func loadScripts(ctx context.Context, c redis.UniversalClient) error {
	for _, s := range []*redis.Script{floorRelease, floorRenew} {
		if err := s.Load(ctx, c).Err(); err != nil {
			return err
		}
	}
	return nil
}

var errNotHeld = errors.New("lock not obtained")

// floorOps is the bare two-round-trip lock with a 128-bit token and no
// fence: SET NX PX, then an EVALSHA compare-and-delete; renew is an EVALSHA
// compare-and-PEXPIRE. do sends one command: directly (one command per
// round trip) or through an autoPipe.
func floorOps(name string, do func(context.Context, redis.Cmder) error) lockOps {
	acquire := func(ctx context.Context, key string) (string, error) {
		tok := token()
		cmd := redis.NewBoolCmd(ctx, "set", key, tok, "px", ttl.Milliseconds(), "nx")
		if err := do(ctx, cmd); err != nil && err != redis.Nil {
			return "", err
		}
		if !cmd.Val() {
			return "", errNotHeld
		}
		return tok, nil
	}
	script := func(ctx context.Context, s *redis.Script, key string, args ...any) error {
		return do(ctx, redis.NewCmd(ctx, append([]any{"evalsha", s.Hash(), 1, key}, args...)...))
	}
	return lockOps{
		name: name,
		cycle: func(ctx context.Context, key string) error {
			tok, err := acquire(ctx, key)
			if err != nil {
				return err
			}
			return script(ctx, floorRelease, key, tok)
		},
		hold: func(ctx context.Context, key string) (func(context.Context) error, func(), error) {
			tok, err := acquire(ctx, key)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context) error {
					return script(ctx, floorRenew, key, tok, ttl.Milliseconds())
				}, func() {
					_ = script(context.Background(), floorRelease, key, tok)
				}, nil
		},
	}
}

// contendedFloorOps is the least a firing claimed by three replicas can
// cost: each sends SET <job>:<slot> <token> NX PX 2000 (through its own
// auto-pipelined client), one wins, nothing is released (the key expires
// by itself). It is also the "key per job and second" gocron locker.
func contendedFloorOps(pipes []*autoPipe) lockOps {
	var slots sync.Map // key -> *int64 under its own goroutine
	return lockOps{
		name: contendedFloorName,
		cycle: func(ctx context.Context, key string) error {
			v, _ := slots.LoadOrStore(key, new(int64))
			n := v.(*int64)
			*n++ // one goroutine per key
			slotKey := key + ":" + strconv.FormatInt(*n, 10)
			won := make([]bool, len(pipes))
			errs := make([]error, len(pipes))
			var wg sync.WaitGroup
			for i, p := range pipes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := redis.NewBoolCmd(ctx, "set", slotKey, token(), "px", 2000, "nx")
					if err := p.do(ctx, cmd); err != nil && err != redis.Nil {
						errs[i] = err
						return
					}
					won[i] = cmd.Val()
				}()
			}
			wg.Wait()
			wins := 0
			for i := range pipes {
				if errs[i] != nil {
					return errs[i]
				}
				if won[i] {
					wins++
				}
			}
			if wins != 1 {
				return fmt.Errorf("slot key %s won %d times", slotKey, wins)
			}
			return nil
		},
	}
}

// plainOps is our locker's plain lock: Obtain(Claim{Key, MetaKey, TTL,
// Unwatched}) (one EVALSHA: SET NX PX and the fence's HINCRBY), Release
// (one EVALSHA compare-and-delete), Lease.Renew.
func plainOps(name string, l *locker.Locker) lockOps {
	claim := func(key string) locker.Claim {
		tag := "{" + key + "}"
		return locker.Claim{Key: tag + ":lease", MetaKey: tag + ":meta", TTL: ttl, Unwatched: true}
	}
	return lockOps{
		name: name,
		cycle: func(ctx context.Context, key string) error {
			lease, err := l.Obtain(ctx, claim(key))
			if err != nil {
				return err
			}
			return lease.Release(ctx)
		},
		hold: func(ctx context.Context, key string) (func(context.Context) error, func(), error) {
			lease, err := l.Obtain(ctx, claim(key))
			if err != nil {
				return nil, nil, err
			}
			return lease.Renew, func() { _ = lease.Release(context.Background()) }, nil
		},
	}
}

func redislockOps(c redis.UniversalClient) lockOps {
	rl := redislock.New(c)
	return lockOps{
		name: "bsm/redislock",
		cycle: func(ctx context.Context, key string) error {
			lk, err := rl.Obtain(ctx, key, ttl, nil)
			if err != nil {
				return err
			}
			return lk.Release(ctx)
		},
		hold: func(ctx context.Context, key string) (func(context.Context) error, func(), error) {
			lk, err := rl.Obtain(ctx, key, ttl, nil)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context) error { return lk.Refresh(ctx, ttl, nil) },
				func() { _ = lk.Release(context.Background()) }, nil
		},
	}
}

// redsyncOps is go-redsync's Mutex over cs (Redlock when several), one try;
// failFast returns as soon as a majority answered (WithFailFast(true)).
func redsyncOps(cs []redis.UniversalClient, failFast bool) lockOps {
	pools := make([]redsyncredis.Pool, len(cs))
	for i, c := range cs {
		pools[i] = goredis.NewPool(c)
	}
	rs := redsync.New(pools...)
	mutex := func(key string) *redsync.Mutex {
		return rs.NewMutex(key, redsync.WithExpiry(ttl), redsync.WithTries(1), redsync.WithFailFast(failFast))
	}
	return lockOps{
		name: redsyncName(len(cs), failFast),
		cycle: func(ctx context.Context, key string) error {
			m := mutex(key)
			if err := m.LockContext(ctx); err != nil {
				return err
			}
			_, err := m.UnlockContext(ctx)
			return err
		},
		hold: func(ctx context.Context, key string) (func(context.Context) error, func(), error) {
			m := mutex(key)
			if err := m.LockContext(ctx); err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context) error { _, err := m.ExtendContext(ctx); return err },
				func() { _, _ = m.UnlockContext(context.Background()) }, nil
		},
	}
}

// buildVariants builds every variant: clients are the quorum's nodes (the
// single-node variants use the first), peers three clients of the first
// node for the contended variants (peers[0] is clients[0]).
func buildVariants(ctx context.Context, clients, peers []redis.UniversalClient) ([]lockOps, error) {
	c0 := clients[0]
	if err := loadScripts(ctx, c0); err != nil {
		return nil, err
	}
	pipes := make([]*autoPipe, len(peers))
	for i, c := range peers {
		pipes[i] = &autoPipe{client: c}
	}
	vs := []lockOps{
		floorOps(floorName, func(ctx context.Context, cmd redis.Cmder) error { return c0.Process(ctx, cmd) }),
		floorOps(batchedFloorName, pipes[0].do),
	}

	lockers := make([]*locker.Locker, len(peers))
	for i, c := range peers {
		l, err := locker.New(c, locker.Options{})
		if err != nil {
			return nil, err
		}
		lockers[i] = l
	}
	sj := newSlotJobs("bench")
	vs = append(vs,
		plainOps(oursName, lockers[0]),
		slotClaimOps(slotName, lockers[0], sj),
		contendedFloorOps(pipes),
		contendedOps(contendedName, lockers, sj),
	)

	lcs := make([]locker.Client, len(clients))
	for i, c := range clients {
		lcs[i] = c
	}
	q, err := locker.NewQuorum(lcs, locker.Options{})
	if err != nil {
		return nil, err
	}
	vs = append(vs,
		plainOps(quorumName(len(clients)), q),
		redislockOps(c0),
		redsyncOps(clients[:1], false),
	)
	if len(clients) > 1 {
		vs = append(vs, redsyncOps(clients, false), redsyncOps(clients, true))
	}
	return vs, nil
}
