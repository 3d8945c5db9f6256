// Command schedbench measures redcron's scheduler as users run it: n
// replicas (scheduler.Scheduler instances, each with its own go-redis client
// and locker) in one process on one real redis-server, many jobs firing
// every second, for a fixed time; then the same with one replica's clock
// ahead. Beside it, in the same run, the peer: gocron v2 with a go-redsync
// distributed locker, same jobs, same ledger, same skew. It prints a
// markdown table (duplicates, misses, fire lag, Redis round trips per
// firing, CPU) and a side-by-side comparison with ratios.
//
//	cd bench && go run ./schedbench -jobs 1000 -duration 30s
//
// Every job records (job, slot, replica, fence, start) in an in-memory
// ledger. Figures cover the steady window: the slots from warmup after the
// start to cooldown before the stop. The schedulers log at warn level only
// (skipped slots, claim failures), into a counter.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
)

type config struct {
	jobs     int
	replicas int
	duration time.Duration
	warmup   time.Duration
	cooldown time.Duration
	skew     time.Duration
	spec     string
	systems  string
	cpuprof  string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.jobs, "jobs", 1000, "jobs, each on -spec")
	flag.IntVar(&cfg.replicas, "replicas", 3, "scheduler instances per system")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Second, "length of one scenario")
	flag.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "slots this soon after the start are outside the steady window")
	flag.DurationVar(&cfg.cooldown, "cooldown", 2*time.Second, "slots this close to the stop are outside the steady window")
	flag.DurationVar(&cfg.skew, "skew", 300*time.Millisecond, "clock offset of replica 0 in the skewed scenarios (0: skip them)")
	flag.StringVar(&cfg.spec, "spec", "* * * * * *", "every job's schedule")
	flag.StringVar(&cfg.systems, "systems", "redcron,gocron", "systems to measure, in order")
	flag.BoolVar(&traceOn, "trace", false, "time when each replica's claims begin relative to their slots (stderr)")
	flag.StringVar(&cfg.cpuprof, "cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
}

// result is one scenario's figures.
type result struct {
	system   string
	skew     time.Duration
	window   int // slots in the steady window
	v        verdict
	rt       rtSnap // summed over replicas, in the window
	server   serverSnap
	cpu      time.Duration // process CPU in the window
	seconds  float64       // window length in real seconds
	logLines int
	logFirst []string
	load     string
}

func run(cfg config) error {
	if cfg.cpuprof != "" {
		f, err := os.Create(cfg.cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()

	fmt.Printf("machine: %s\n\n", machine(context.Background(), admin))
	var results []result
	for _, sys := range strings.Split(cfg.systems, ",") {
		skews := []time.Duration{0}
		if cfg.skew != 0 {
			skews = append(skews, cfg.skew)
		}
		for _, skew := range skews {
			fmt.Fprintf(os.Stderr, "schedbench: %s, skew %v, %d jobs, %d replicas, %v (load %s)\n", sys, skew, cfg.jobs, cfg.replicas, cfg.duration, loadavg())
			r, err := scenario(cfg, srv, admin, strings.TrimSpace(sys), skew)
			if err != nil {
				return fmt.Errorf("%s skew %v: %w", sys, skew, err)
			}
			results = append(results, r)
			for _, l := range r.logFirst {
				fmt.Fprint(os.Stderr, "  log: ", l)
			}
		}
	}
	printTable(cfg, results)
	return nil
}

// scenario runs one system for cfg.duration with replica 0's clock skew
// ahead, and measures the steady window.
func scenario(cfg config, srv *redistest.Server, admin *redis.Client, system string, skew time.Duration) (result, error) {
	ctx := context.Background()
	res := result{system: system, skew: skew}
	if err := admin.FlushAll(ctx).Err(); err != nil {
		return res, err
	}
	runtime.GC()
	offsets := make([]time.Duration, cfg.replicas)
	offsets[0] = skew
	counters := make([]*rtCounter, cfg.replicas)
	clients := make([]*redis.Client, cfg.replicas)
	for i := range clients {
		// As cmd/redcron configures its client (timeouts 1s/500ms/500ms,
		// go-redis' default pool of 10 per CPU).
		clients[i] = redis.NewClient(&redis.Options{Addr: srv.Addr(),
			DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
			MaxRetries: -1, ContextTimeoutEnabled: true})
		counters[i] = newRTCounter()
		clients[i].AddHook(counters[i])
		if err := clients[i].Ping(ctx).Err(); err != nil {
			return res, err
		}
		defer clients[i].Close()
	}
	l := newLedger(cfg.jobs * (int(cfg.duration/time.Second) + 2))

	t0 := time.Now()
	stopAt := t0.Add(cfg.duration)
	from := t0.Truncate(time.Second).Add(time.Second + cfg.warmup).Unix()
	to := stopAt.Truncate(time.Second).Add(-cfg.cooldown).Unix()
	if to < from {
		return res, fmt.Errorf("no steady window: duration %v too short for warmup %v and cooldown %v", cfg.duration, cfg.warmup, cfg.cooldown)
	}
	res.window = int(to - from + 1)

	var stop func() error
	switch system {
	case "redcron":
		rr, err := startRedcron(clients, cfg.jobs, cfg.spec, offsets, l)
		if err != nil {
			return res, err
		}
		stop = rr.stop
		defer func() { res.logLines, res.logFirst = rr.logs.n, rr.logs.first }()
	case "gocron":
		g, err := startGocron(clients, cfg.jobs, cfg.spec, offsets, l)
		if err != nil {
			return res, err
		}
		stop = g.stop
	default:
		return res, fmt.Errorf("unknown system %q", system)
	}

	// Snapshots bracket the window's work: a slot's claims start at
	// slot - skew (the early replica) and end well before the next slot
	// minus skew.
	edge := func(slot int64) time.Time { return time.Unix(slot, 0).Add(-skew - 150*time.Millisecond) }
	type snap struct {
		rt     []rtSnap
		server serverSnap
		cpu    time.Duration
		at     time.Time
	}
	take := func() (snap, error) {
		s := snap{at: time.Now(), cpu: processCPU()}
		for _, c := range counters {
			s.rt = append(s.rt, c.snap())
		}
		var err error
		s.server, err = serverInfo(ctx, admin)
		return s, err
	}
	time.Sleep(time.Until(edge(from)))
	a, err := take()
	if err != nil {
		_ = stop()
		return res, err
	}
	res.load = loadavg()
	time.Sleep(time.Until(edge(to + 1)))
	b, err := take()
	if err != nil {
		_ = stop()
		return res, err
	}
	res.load += " / " + loadavg()
	time.Sleep(time.Until(stopAt))
	if err := stop(); err != nil {
		return res, err
	}

	for i := range counters {
		d := b.rt[i].sub(a.rt[i])
		res.rt.roundTrips += d.roundTrips
		res.rt.cmds += d.cmds
		res.rt.claims += d.claims
		res.rt.finishes += d.finishes
		res.rt.scripts += d.scripts
	}
	res.server = b.server.sub(a.server)
	res.cpu = b.cpu - a.cpu
	res.seconds = b.at.Sub(a.at).Seconds()
	res.v = analyse(l.snapshot(), cfg.jobs, cfg.replicas, from, to)
	return res, nil
}

func machine(ctx context.Context, admin *redis.Client) string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	rv := "?"
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		rv = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%d CPUs (%s), %s %s/%s, %s, load %s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, rv, loadavg())
}
