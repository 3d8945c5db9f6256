// Command lockbench measures a lock cycle (acquire + release) and a renewal
// for redcron's locker beside the floor (a bare SET NX PX, then an EVALSHA
// compare-and-delete) and beside its peers (bsm/redislock, go-redsync), all
// in one process run against real redis-server processes it starts on
// loopback. Variants are interleaved finely (each measurement is split into
// turns that the variants take round robin, so that all of them see the same
// mix of a shared machine's moods), every figure is the median of the
// repetitions, and each is printed as a ratio to the floor; the quorum is
// also compared with go-redsync's Redlock over the same nodes.
//
//	cd bench && go run ./lockbench -reps 3 -duration 2s
//
// -only REGEXP keeps the floor and the matching variants; -cpuprofile FILE
// profiles the whole run.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
)

const ttl = 10 * time.Second

// lockOps is one variant: a cycle (acquire then release) and a renewal on a
// lock it holds. Each goroutine gets its own key.
type lockOps struct {
	name  string
	cycle func(ctx context.Context, key string) error
	// hold acquires key and returns a renew function and a release.
	hold func(ctx context.Context, key string) (renew func(context.Context) error, release func(), err error)
}

func main() {
	var (
		duration = flag.Duration("duration", 2*time.Second, "length of one measurement")
		reps     = flag.Int("reps", 3, "repetitions of every measurement (medians are reported)")
		slices   = flag.Int("slices", 10, "turns per measurement: variants take turns of duration/slices each")
		concs    = flag.String("conc", "1,32", "comma-separated goroutine counts")
		nodes    = flag.Int("nodes", 5, "redis-server processes for the quorum variants")
		only     = flag.String("only", "", "regexp: run only the variants whose name matches (the floor always runs)")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockbench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench:", err)
			os.Exit(1)
		}
	}
	err := run(*duration, *reps, *slices, *concs, *nodes, *only)
	if *cpuprof != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, reps, slices int, concList string, nNodes int, only string) error {
	match, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("bad -only: %w", err)
	}
	var concs []int
	for _, f := range strings.Split(concList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -conc %q", concList)
		}
		concs = append(concs, n)
	}
	servers := make([]*redistest.Server, nNodes)
	clients := make([]redis.UniversalClient, nNodes)
	for i := range servers {
		s, err := redistest.StartServer(redistest.Options{})
		if err != nil {
			return err
		}
		defer s.Stop()
		servers[i] = s
		c := redis.NewClient(&redis.Options{Addr: s.Addr(), PoolSize: 64, ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: -1, ContextTimeoutEnabled: true}) // the settings redcron's locker needs
		defer c.Close()
		clients[i] = c
	}

	all, err := buildVariants(clients)
	if err != nil {
		return err
	}
	variants := all[:1]
	for _, v := range all[1:] {
		if match.MatchString(v.name) {
			variants = append(variants, v)
		}
	}

	// results[variant][measure] -> samples (ops/s)
	results := map[string]map[string][]float64{}
	add := func(v, m string, x float64) {
		if results[v] == nil {
			results[v] = map[string][]float64{}
		}
		results[v][m] = append(results[v][m], x)
	}
	ctx := context.Background()
	for rep := range reps {
		for _, conc := range concs {
			ops, err := interleave(ctx, variants, duration, slices, rep, func(v lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error) {
				prefix := fmt.Sprintf("bench:%d:%d:%s", rep, conc, v.name)
				return func(d time.Duration) (int64, time.Duration, error) {
					return measure(ctx, d, conc, prefix, v.cycle)
				}, func() {}, nil
			})
			if err != nil {
				return fmt.Errorf("cycle x%d: %w", conc, err)
			}
			for i, v := range variants {
				add(v.name, "cycle/"+strconv.Itoa(conc), ops[i])
			}
		}
		ops, err := interleave(ctx, variants, duration, slices, rep, func(v lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error) {
			key := fmt.Sprintf("renew:%d:%s", rep, v.name)
			renew, release, err := v.hold(ctx, key)
			if err != nil {
				return nil, nil, err
			}
			return func(d time.Duration) (int64, time.Duration, error) {
				return measure(ctx, d, 1, key, func(ctx context.Context, _ string) error { return renew(ctx) })
			}, release, nil
		})
		if err != nil {
			return fmt.Errorf("renew: %w", err)
		}
		for i, v := range variants {
			add(v.name, "renew/1", ops[i])
		}
		for _, c := range clients {
			_ = c.FlushAll(ctx).Err()
		}
	}
	printTable(variants, concs, results, duration, reps, slices, nNodes)
	return nil
}

// interleave measures every variant for d in total, as slices turns of
// d/slices each, round robin (the first variant of each turn rotating), so
// that every variant sees the same mix of the machine's moods. setup
// prepares a variant once per repetition and returns its timed run and a
// cleanup. It returns ops/s per variant, in the order of vs.
func interleave(ctx context.Context, vs []lockOps, d time.Duration, slices, rep int, setup func(lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error)) ([]float64, error) {
	runs := make([]func(time.Duration) (int64, time.Duration, error), len(vs))
	for i, v := range vs {
		r, cleanup, err := setup(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		defer cleanup()
		runs[i] = r
	}
	n := make([]int64, len(vs))
	took := make([]time.Duration, len(vs))
	for s := range slices {
		for j := range vs {
			i := (j + s + rep) % len(vs)
			k, t, err := runs[i](d / time.Duration(slices))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vs[i].name, err)
			}
			n[i] += k
			took[i] += t
		}
	}
	ops := make([]float64, len(vs))
	for i := range vs {
		ops[i] = float64(n[i]) / took[i].Seconds()
	}
	return ops, nil
}

// measure runs conc goroutines, each cycling on its own key, for d, and
// returns the cycles completed and the time taken.
func measure(ctx context.Context, d time.Duration, conc int, prefix string, cycle func(context.Context, string) error) (int64, time.Duration, error) {
	var (
		n       atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	stop := time.Now().Add(d)
	start := time.Now()
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := prefix + ":" + strconv.Itoa(g)
			for time.Now().Before(stop) {
				if err := cycle(ctx, key); err != nil {
					errOnce.Do(func() { first = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), time.Since(start), first
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	floorRelease = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
	floorRenew   = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
)

var errNotHeld = errors.New("lock not obtained")

func buildVariants(clients []redis.UniversalClient) ([]lockOps, error) {
	c0 := clients[0]
	var vs []lockOps

	// The floor: the bare two-round-trip lock, with the same 128-bit token.
	floorAcquire := func(ctx context.Context, key string) (string, error) {
		tok := token()
		ok, err := c0.SetNX(ctx, key, tok, ttl).Result()
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errNotHeld
		}
		return tok, nil
	}
	vs = append(vs, lockOps{
		name: "floor (SET NX PX + EVALSHA del)",
		cycle: func(ctx context.Context, key string) error {
			tok, err := floorAcquire(ctx, key)
			if err != nil {
				return err
			}
			return floorRelease.Run(ctx, c0, []string{key}, tok).Err()
		},
		hold: func(ctx context.Context, key string) (func(context.Context) error, func(), error) {
			tok, err := floorAcquire(ctx, key)
			if err != nil {
				return nil, nil, err
			}
			return func(ctx context.Context) error {
					return floorRenew.Run(ctx, c0, []string{key}, tok, ttl.Milliseconds()).Err()
				}, func() {
					_ = floorRelease.Run(context.Background(), c0, []string{key}, tok).Err()
				}, nil
		},
	})

	ours := func(name string, l *locker.Locker) lockOps {
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
	single, err := locker.New(c0, locker.Options{})
	if err != nil {
		return nil, err
	}
	vs = append(vs, ours("redcron, 1 node (fence incl.)", single))
	lcs := make([]locker.Client, len(clients))
	for i, c := range clients {
		lcs[i] = c
	}
	q, err := locker.NewQuorum(lcs, locker.Options{})
	if err != nil {
		return nil, err
	}
	vs = append(vs, ours(fmt.Sprintf("redcron, quorum of %d", len(clients)), q))

	rl := redislock.New(c0)
	vs = append(vs, lockOps{
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
	})

	redsyncVariant := func(name string, cs []redis.UniversalClient) lockOps {
		pools := make([]redsyncredis.Pool, len(cs))
		for i, c := range cs {
			pools[i] = goredis.NewPool(c)
		}
		rs := redsync.New(pools...)
		mutex := func(key string) *redsync.Mutex {
			return rs.NewMutex(key, redsync.WithExpiry(ttl), redsync.WithTries(1))
		}
		return lockOps{
			name: name,
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
	vs = append(vs, redsyncVariant("go-redsync, 1 pool", clients[:1]))
	vs = append(vs, redsyncVariant(fmt.Sprintf("go-redsync, %d pools", len(clients)), clients))
	return vs, nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(vs []lockOps, concs []int, res map[string]map[string][]float64, d time.Duration, reps, slices, nodes int) {
	measures := []string{}
	for _, c := range concs {
		measures = append(measures, "cycle/"+strconv.Itoa(c))
	}
	measures = append(measures, "renew/1")
	floor := vs[0].name
	fmt.Printf("lockbench: %s, GOMAXPROCS=%d, %d reps x %s per variant and measure (in %d interleaved turns), medians in ops/s, (ratio to the floor)\n\n", runtime.Version(), runtime.GOMAXPROCS(0), reps, d, slices)
	fmt.Printf("| variant |")
	for _, m := range measures {
		fmt.Printf(" %s |", strings.Replace(strings.Replace(m, "cycle/", "cycle x", 1), "renew/", "renew x", 1))
	}
	fmt.Printf("\n|---|")
	for range measures {
		fmt.Printf("---|")
	}
	fmt.Println()
	for _, v := range vs {
		fmt.Printf("| %s |", v.name)
		for _, m := range measures {
			x, f := median(res[v.name][m]), median(res[floor][m])
			fmt.Printf(" %.0f (%.2fx) |", x, x/f)
		}
		fmt.Println()
	}
	q, rs := fmt.Sprintf("redcron, quorum of %d", nodes), fmt.Sprintf("go-redsync, %d pools", nodes)
	if res[q] == nil || res[rs] == nil {
		return
	}
	for _, c := range concs {
		m := "cycle/" + strconv.Itoa(c)
		fmt.Printf("quorum of %d vs go-redsync %d pools, cycle x%d: %.2fx\n", nodes, nodes, c, median(res[q][m])/median(res[rs][m]))
	}
}
