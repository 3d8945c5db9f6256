// Command lockbench measures a lock cycle (acquire + release) and a renewal
// for redcron's locker beside two floors and beside its peers
// (bsm/redislock, go-redsync), all in one process against real
// redis-server processes it starts on loopback and stops at the end.
//
// The floors are the bare two-round-trip lock (SET NX PX, then an EVALSHA
// compare-and-delete): once with one command per round trip, once through
// the same automatic pipelining our locker does (concurrent callers' commands
// share round trips), so that batching and what each round trip carries
// are compared separately. Beside the plain lock it measures the
// scheduler's real path (a slot claim built as the scheduler builds it,
// then Finish with the run's record) and a contended firing (three
// replicas claim the same slot, two lose), with its own floor. Last, it
// splits where Redis's time goes on the claim path (breakdown.go).
//
// Variants are interleaved finely (each measurement is split into turns
// that the variants take round robin, so that all of them see the same mix
// of a shared machine's moods); every figure is the median of the
// repetitions, printed with their min and max and as ratios to the floors.
//
//	cd bench && go run ./lockbench
//
// -only REGEXP keeps the floors and the matching variants; -cpuprofile FILE
// profiles the whole run.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/bench/internal/host"
	"github.com/redcron/redcron/internal/redistest"
)

// lockOps is one variant: a cycle (acquire then release, or one firing)
// and a renewal on a lock it holds. Each goroutine gets its own key. hold
// is nil for variants without a renewal.
type lockOps struct {
	name  string
	cycle func(ctx context.Context, key string) error
	// hold acquires key and returns a renew function and a release.
	hold func(ctx context.Context, key string) (renew func(context.Context) error, release func(), err error)
}

type config struct {
	duration time.Duration
	reps     int
	slices   int
	concs    []int
	nodes    int
	only     *regexp.Regexp
}

func main() {
	var (
		cfg     config
		concs   string
		only    string
		cpuprof string
	)
	flag.DurationVar(&cfg.duration, "duration", 2*time.Second, "length of one measurement of one variant")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions of every measurement (min, median and max are reported)")
	flag.IntVar(&cfg.slices, "slices", 10, "turns per measurement: variants take turns of duration/slices each")
	flag.StringVar(&concs, "conc", "1,32", "comma-separated goroutine counts (concurrent cycles)")
	flag.IntVar(&cfg.nodes, "nodes", 5, "redis-server processes for the quorum variants")
	flag.StringVar(&only, "only", "", "regexp: run only the variants whose name matches (the floors always run)")
	flag.StringVar(&cpuprof, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if err := parse(&cfg, concs, only); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(2)
	}
	if cpuprof != "" {
		f, err := os.Create(cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lockbench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "lockbench:", err)
			os.Exit(1)
		}
	}
	err := run(cfg)
	if cpuprof != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func parse(cfg *config, concs, only string) error {
	var err error
	if cfg.only, err = regexp.Compile(only); err != nil {
		return fmt.Errorf("bad -only: %w", err)
	}
	for _, f := range strings.Split(concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -conc %q", concs)
		}
		cfg.concs = append(cfg.concs, n)
	}
	if cfg.reps < 1 || cfg.slices < 1 || cfg.nodes < 1 || cfg.duration <= 0 {
		return fmt.Errorf("-reps, -slices, -nodes and -duration must be positive")
	}
	return nil
}

// newClient is a client with the settings redcron's locker needs, and a
// pool large enough for 32 goroutines.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, ContextTimeoutEnabled: true})
}

func run(cfg config) error {
	fmt.Printf("lockbench: %s, load %s\n", machine(), host.LoadAvg())
	servers := make([]*redistest.Server, cfg.nodes)
	clients := make([]redis.UniversalClient, cfg.nodes)
	for i := range servers {
		s, err := redistest.StartServer(redistest.Options{})
		if err != nil {
			return err
		}
		defer s.Stop()
		servers[i] = s
		c := newClient(s.Addr())
		defer c.Close()
		clients[i] = c
	}
	// The contended variants' other two replicas, each with its own client
	// (connection pool) on the first server.
	peers := []redis.UniversalClient{clients[0]}
	for range 2 {
		c := newClient(servers[0].Addr())
		defer c.Close()
		peers = append(peers, c)
	}

	all, err := buildVariants(context.Background(), clients, peers)
	if err != nil {
		return err
	}
	var variants []lockOps
	for _, v := range all {
		if v.name == floorName || v.name == batchedFloorName || cfg.only.MatchString(v.name) {
			variants = append(variants, v)
		}
	}

	// results[variant][measure] -> samples (ops/s), one per repetition;
	// cpu likewise, the servers' CPU per op (us).
	results, cpu := map[string]map[string][]float64{}, map[string]map[string][]float64{}
	add := func(v, m string, x, c float64) {
		if results[v] == nil {
			results[v], cpu[v] = map[string][]float64{}, map[string][]float64{}
		}
		results[v][m] = append(results[v][m], x)
		cpu[v][m] = append(cpu[v][m], c)
	}
	ctx := context.Background()
	for rep := range cfg.reps {
		fmt.Fprintf(os.Stderr, "lockbench: repetition %d of %d (load %s)\n", rep+1, cfg.reps, host.LoadAvg())
		for _, conc := range cfg.concs {
			ops, cpuOps, err := interleave(variants, cfg.duration, cfg.slices, rep, clients, func(v lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error) {
				prefix := fmt.Sprintf("bench:%d:%d:%s", rep, conc, v.name)
				return func(d time.Duration) (int64, time.Duration, error) {
					return measure(ctx, d, conc, prefix, v.cycle)
				}, func() {}, nil
			})
			if err != nil {
				return fmt.Errorf("cycle x%d: %w", conc, err)
			}
			for i, v := range variants {
				add(v.name, cycleMeasure(conc), ops[i], cpuOps[i])
			}
		}
		var renewable []lockOps
		for _, v := range variants {
			if v.hold != nil {
				renewable = append(renewable, v)
			}
		}
		ops, cpuOps, err := interleave(renewable, cfg.duration, cfg.slices, rep, clients, func(v lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error) {
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
		for i, v := range renewable {
			add(v.name, renewMeasure, ops[i], cpuOps[i])
		}
		for _, c := range clients {
			if err := c.FlushAll(ctx).Err(); err != nil {
				return err
			}
		}
		if err := loadScripts(ctx, clients[0]); err != nil { // FLUSHALL keeps scripts; a restart would not
			return err
		}
	}
	printTables(cfg, variants, results, cpu)
	if err := breakdown(ctx, cfg); err != nil {
		return err
	}
	fmt.Printf("\nload at the end: %s\n", host.LoadAvg())
	return nil
}

const renewMeasure = "renew x1"

func cycleMeasure(conc int) string { return "cycle x" + strconv.Itoa(conc) }

// interleave measures every variant for d in total, as slices turns of
// d/slices each, round robin (the first variant of each turn rotating), so
// that every variant sees the same mix of the machine's moods. setup
// prepares a variant once per repetition and returns its timed run and a
// cleanup. It returns ops/s per variant, in the order of vs, and the
// servers' CPU (INFO, all servers, read around each turn) per op, in
// microseconds.
func interleave(vs []lockOps, d time.Duration, slices, rep int, servers []redis.UniversalClient, setup func(lockOps) (func(time.Duration) (int64, time.Duration, error), func(), error)) (ops, cpuPerOp []float64, err error) {
	runs := make([]func(time.Duration) (int64, time.Duration, error), len(vs))
	for i, v := range vs {
		r, cleanup, err := setup(v)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", v.name, err)
		}
		defer cleanup()
		runs[i] = r
	}
	n := make([]int64, len(vs))
	took := make([]time.Duration, len(vs))
	cpu := make([]time.Duration, len(vs))
	for s := range slices {
		for j := range vs {
			i := (j + s + rep) % len(vs)
			before, err := serverCPU(servers)
			if err != nil {
				return nil, nil, err
			}
			k, t, err := runs[i](d / time.Duration(slices))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", vs[i].name, err)
			}
			after, err := serverCPU(servers)
			if err != nil {
				return nil, nil, err
			}
			n[i] += k
			took[i] += t
			cpu[i] += after - before
		}
	}
	ops, cpuPerOp = make([]float64, len(vs)), make([]float64, len(vs))
	for i := range vs {
		ops[i] = float64(n[i]) / took[i].Seconds()
		cpuPerOp[i] = float64(cpu[i].Microseconds()) / float64(max(n[i], 1))
	}
	return ops, cpuPerOp, nil
}

// serverCPU is the CPU the servers used so far (INFO cpu: used_cpu_user +
// used_cpu_sys, summed).
func serverCPU(cs []redis.UniversalClient) (time.Duration, error) {
	var total time.Duration
	for _, c := range cs {
		d, err := infoCPU(context.Background(), c, "used_cpu_user", "used_cpu_sys")
		if err != nil {
			return 0, err
		}
		total += d
	}
	return total, nil
}

// infoCPU is the sum of the named fields of c's INFO cpu (seconds).
func infoCPU(ctx context.Context, c redis.UniversalClient, fields ...string) (time.Duration, error) {
	txt, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, line := range strings.Split(txt, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if slices.Contains(fields, k) {
			f, _ := strconv.ParseFloat(v, 64)
			total += time.Duration(f * float64(time.Second))
		}
	}
	return total, nil
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

// stats are the min, median and max of xs.
func stats(xs []float64) (lo, med, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0, 0, 0
	}
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

func median(xs []float64) float64 {
	_, m, _ := stats(xs)
	return m
}

func printTables(cfg config, vs []lockOps, res, cpu map[string]map[string][]float64) {
	var measures []string
	for _, c := range cfg.concs {
		measures = append(measures, cycleMeasure(c))
	}
	measures = append(measures, renewMeasure)
	fmt.Printf("\n%s, GOMAXPROCS=%d, %d reps x %s per variant and measure (in %d interleaved turns each)\n\n",
		runtime.Version(), runtime.GOMAXPROCS(0), cfg.reps, cfg.duration, cfg.slices)

	header := func(title string) {
		fmt.Printf("| %s |", title)
		for _, m := range measures {
			fmt.Printf(" %s |", m)
		}
		fmt.Printf("\n|---|")
		for range measures {
			fmt.Printf("---:|")
		}
		fmt.Println()
	}
	spread := func(title, format string, of map[string]map[string][]float64) {
		header(title)
		for _, v := range vs {
			fmt.Printf("| %s |", v.name)
			for _, m := range measures {
				if xs := of[v.name][m]; len(xs) > 0 {
					lo, med, hi := stats(xs)
					fmt.Printf(" "+format+" ["+format+"-"+format+"] |", med, lo, hi)
				} else {
					fmt.Printf(" - |")
				}
			}
			fmt.Println()
		}
	}
	spread("ops/s: median [min-max]", "%.0f", res)
	fmt.Println()
	spread("redis-server CPU per op, all servers (us): median [min-max]", "%.1f", cpu)

	fmt.Println()
	header("ratio of medians: to the floor / to the batched floor")
	for _, v := range vs {
		fmt.Printf("| %s |", v.name)
		for _, m := range measures {
			x := median(res[v.name][m])
			if x == 0 {
				fmt.Printf(" - |")
				continue
			}
			fmt.Printf(" %.2fx / %.2fx |", x/median(res[floorName][m]), x/median(res[batchedFloorName][m]))
		}
		fmt.Println()
	}

	fmt.Println()
	ratio := func(label, a, b string) {
		if res[a] == nil || res[b] == nil {
			return
		}
		for _, m := range measures {
			if x, y := median(res[a][m]), median(res[b][m]); x > 0 && y > 0 {
				fmt.Printf("- %s, %s: %.2fx\n", label, m, x/y)
			}
		}
	}
	ratio("what batching buys the floor (batched floor / floor)", batchedFloorName, floorName)
	ratio("our plain lock / the batched floor", oursName, batchedFloorName)
	ratio("the scheduler's claim + finish / our plain lock", slotName, oursName)
	ratio("contended firing, ours / its floor", contendedName, contendedFloorName)
	q := quorumName(cfg.nodes)
	ratio(fmt.Sprintf("quorum of %d / go-redsync %d pools", cfg.nodes, cfg.nodes), q, redsyncName(cfg.nodes, false))
	ratio(fmt.Sprintf("quorum of %d / go-redsync %d pools with WithFailFast(true)", cfg.nodes, cfg.nodes), q, redsyncName(cfg.nodes, true))
}

// machine describes the CPUs and Go.
func machine() string {
	return fmt.Sprintf("%d CPUs (%s), %s %s/%s", runtime.NumCPU(), host.CPUModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
