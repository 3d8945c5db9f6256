// Command schedbench measures redcron's scheduler as users run it: R
// replicas, each a separate process (schedbench re-executes itself with
// -child), loading a generated jobs.yaml and claiming on one real
// redis-server that the bench starts on loopback and stops at the end.
// Beside it, in the same runs, its peer: gocron v2 with go-redsync's
// locker (the stock setup) and with a key per job and second (SET NX EX 2,
// no release). Every scenario runs -reps times, interleaved with the
// other scenarios of its suite, and every figure is printed as the median
// of the repetitions with their min and max, beside its target and, for
// the peers, as ratios.
//
//	cd bench && go run ./schedbench                        # the compare suite, a few minutes
//	cd bench && go run ./schedbench -suite all -reps 5     # every suite but soak, about 2 hours on 2 cores
//	cd bench && go run ./schedbench -suite soak -reps 1    # 30 minutes at 1,000 firings/s, sampled every minute
//	cd bench && go run ./schedbench -suite cluster         # 1 vs 3 Redis Cluster masters, a few minutes
//	cd bench && go run ./schedbench -suite quorum          # quorum mode on 3 masters, past its knee, about a minute
//
// The soak suite is not part of "all" (its window alone is 30 minutes):
// name it. It samples Redis's used_memory and key count and each
// replica's memory every -sample through its window and prints them with
// their growth. The cluster suite runs its replicas on Redis Clusters of
// 1 and of 3 masters that the bench starts (internal/redistest), with
// the same jobs, and reports Redis CPU per master. The quorum suite runs
// them in quorum mode on 3 independent masters, past the knee of the
// claims that every master takes, and counts the misses that a majority
// of the masters hold no record of.
//
// Each child records every run it starts (job, slot, fence, start on the
// real clock) and counts, with a go-redis hook on its client, every
// command it sends; at the end it hands its ledger and counts to the
// parent over a pipe. The parent reads redis-server's INFO (CPU, calls)
// at the same instants. Figures cover a steady window that starts after
// a slot mark's retention has passed (so that Redis expires marks as fast
// as it writes them); see the suites below and bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// suite is one family of scenarios: every combination of its systems,
// replica counts and skews, with the same jobs.
type suite struct {
	name     string
	systems  []string
	replicas []int
	skews    []time.Duration // replica 0's clock offset
	// jobs on spec; spec "" means the mixed, mostly hourly set of the load
	// suite (see writeJobs).
	jobs int
	spec string
	// The jobs' catchup_window and history keep: they set how long a
	// slot's mark is kept (Scheduler.MarkRetention: 2 x max_clock_skew +
	// catchup_window + 5s) and when a job's history stops growing.
	catchup time.Duration
	keep    int
	// warmup is how long the replicas run before the steady window, at
	// least the marks' retention; window is its length (whole seconds).
	warmup, window time.Duration
	// stagger spaces the replicas' starts (-stagger): 0 starts them
	// together, so that they load jobs.yaml at once on the shared cores;
	// a stagger longer than a load measures each loading while its peers
	// run, as in a rolling start.
	stagger time.Duration
	// masters are the Redis topologies the scenarios run on: 0 is one
	// plain redis-server (the bench's shared one), n > 0 a Redis Cluster
	// of n masters (jobs.yaml's redis.cluster), or with quorum n
	// independent masters (jobs.yaml's redis.quorum). nil means {0}.
	masters []int
	quorum  bool
	// sampled makes the window's snapshots every -sample, with Redis's
	// memory and keys and each replica's memory at each (see soak.go).
	sampled bool
	// notInAll keeps the suite out of -suite all (it must be named).
	notInAll bool
	// jitter is every job's jitter (-jitter, redcron only): a run starts
	// up to this long after its slot, and its lag still counts from the
	// slot.
	jitter time.Duration
	// records keeps the replicas running until the window's skip records
	// are due (catchup_window + max_clock_skew after its last slot), then
	// reads the jobs' history: a miss with a record was recorded (a skip
	// with its reason), one without was dropped (in quorum mode: a record
	// on a majority of the masters).
	records bool
}

// Systems.
const (
	sysRedcron     = "redcron"
	sysGocron      = "gocron"       // gocron v2 + go-redsync, the stock distributed locker
	sysGocronKeyed = "gocron-keyed" // gocron v2 + SET job:second NX EX 2, never released
	sysFloor       = "floor"        // the bare shared claim per firing (floor.go)
)

// suites are the scenarios, in the order "all" runs them. The compare and
// replicas suites shorten the marks' retention to 10s (catchup_window 1s,
// which only refuses claims made more than 1s after their slot) and the
// history to 10 records, so that Redis is at steady state after 12s; the
// retention suite is the compare suite's redcron scenario with the stock
// jobs.yaml defaults (catchup_window 1m: retention 69s; history 100) and a
// warmup past both, to show that the shortening does not change the
// figures. The rate, burst and load suites use the stock defaults. The
// cluster and soak suites shorten the retention as the compare suite does;
// the cluster suite keeps 50 records of history, so that the window's
// skip records (20s of slots) are still there when it reads them; so
// does the quorum suite.
// The replicas suite's window is 40s: at R=30 a 10s window gave each
// replica about 333 firings, whose spread under hashing alone (about 5 %
// a replica) put the largest of 30 shares past the ±10 % it measures; 40s
// gives each about 1,333 (a spread of about 2.7 %).
var suites = []suite{
	{name: "compare", systems: []string{sysRedcron, sysFloor, sysGocron, sysGocronKeyed}, replicas: []int{3},
		skews: []time.Duration{0, 300 * time.Millisecond}, jobs: 1000, spec: "* * * * * *",
		catchup: time.Second, keep: 10, warmup: 14 * time.Second, window: 10 * time.Second},
	{name: "replicas", systems: []string{sysRedcron}, replicas: []int{3, 10, 30},
		skews: []time.Duration{0}, jobs: 1000, spec: "* * * * * *",
		catchup: time.Second, keep: 10, warmup: 15 * time.Second, window: 40 * time.Second},
	{name: "retention", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: 1000, spec: "* * * * * *",
		catchup: time.Minute, keep: 100, warmup: 105 * time.Second, window: 20 * time.Second},
	{name: "rate", systems: []string{sysRedcron, sysFloor}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: 10000, spec: "* * * * * *",
		catchup: time.Minute, keep: 200, warmup: 75 * time.Second, window: 60 * time.Second, records: true},
	{name: "burst", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: 10000, spec: "*/20 * * * * *",
		catchup: time.Minute, keep: 100, warmup: 75 * time.Second, window: 60 * time.Second, records: true},
	{name: "load", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: 100000, spec: "",
		catchup: time.Minute, keep: 100, warmup: 60 * time.Second, window: 20 * time.Second},
	{name: "cluster", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: clusterJobs, spec: "* * * * * *",
		catchup: time.Second, keep: 50, warmup: 14 * time.Second, window: 20 * time.Second,
		masters: []int{1, 3}, records: true},
	{name: "quorum", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: quorumJobs, spec: "* * * * * *",
		catchup: time.Second, keep: 50, warmup: 14 * time.Second, window: 20 * time.Second,
		masters: []int{3}, quorum: true, records: true},
	{name: "soak", systems: []string{sysRedcron}, replicas: []int{3},
		skews: []time.Duration{0}, jobs: 1000, spec: "* * * * * *",
		catchup: time.Second, keep: 10, warmup: 14 * time.Second, window: 30 * time.Minute,
		sampled: true, notInAll: true},
}

// cooldown is how long the replicas run after the window, so that the
// window's last runs end before they stop.
const cooldown = 2 * time.Second

type config struct {
	suites   []suite
	reps     int
	profiles string        // directory for the children's CPU and heap profiles
	infoLogs string        // directory for the redcron replicas' info-level logs
	sample   time.Duration // the sampled suites' sampling interval
	child    bool
}

func main() {
	var (
		cfg      config
		names    string
		jobs     int
		replicas string
		systems  string
		warmup   time.Duration
		window   time.Duration
		stagger  time.Duration
		jitter   time.Duration
	)
	flag.StringVar(&names, "suite", "compare", "comma-separated suites: compare, replicas, retention, rate, burst, load, cluster, quorum, soak, or all (every suite but soak, which takes 30 minutes: name it)")
	flag.DurationVar(&cfg.sample, "sample", time.Minute, "the soak suite's sampling interval (whole seconds) for Redis memory, keys and the replicas' memory")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of every scenario, interleaved (min, median and max are reported)")
	flag.StringVar(&cfg.profiles, "cpuprofile", "", "directory: each child writes there a CPU profile of its steady window and a heap profile at its end")
	flag.StringVar(&cfg.infoLogs, "info-logs", "", "directory: each redcron replica logs at info level, as `redcron run` does by default (a line as each run starts and ends), to a file there (empty: warn level only, counted and not kept)")
	flag.IntVar(&jobs, "jobs", 0, "override every suite's job count (0: the suite's)")
	flag.StringVar(&replicas, "replicas", "", "override every suite's replica counts, comma-separated")
	flag.StringVar(&systems, "systems", "", "keep only these of every suite's systems, comma-separated: redcron, floor, gocron, gocron-keyed (empty: the suite's)")
	flag.DurationVar(&warmup, "warmup", 0, "override every suite's warmup (0: the suite's; shorter than the marks' retention is not steady)")
	flag.DurationVar(&window, "window", 0, "override every suite's steady window (0: the suite's)")
	flag.DurationVar(&stagger, "stagger", 0, "start each suite's replicas this far apart (0: together)")
	flag.DurationVar(&jitter, "jitter", 0, "give every job this jitter (redcron only: name -systems redcron; 0: none)")
	flag.BoolVar(&cfg.child, "child", false, "run as one replica, as the parent asks on stdin (internal)")
	flag.Parse()
	if cfg.child {
		if err := runChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "schedbench child:", err)
			os.Exit(1)
		}
		return
	}
	if err := pickSuites(&cfg, names, jobs, replicas, systems, warmup, window, stagger, jitter); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(2)
	}
	if err := runParent(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "schedbench:", err)
		os.Exit(1)
	}
}

// pickSuites selects the suites named and applies the overrides.
func pickSuites(cfg *config, names string, jobs int, replicas, systems string, warmup, window, stagger, jitter time.Duration) error {
	if cfg.reps < 1 {
		return fmt.Errorf("-reps must be at least 1")
	}
	if cfg.sample = cfg.sample.Truncate(time.Second); cfg.sample < time.Second {
		return fmt.Errorf("-sample must be at least 1s")
	}
	var rs []int
	if replicas != "" {
		for _, f := range strings.Split(replicas, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("bad -replicas %q", replicas)
			}
			rs = append(rs, n)
		}
	}
	want := strings.Split(names, ",")
	for _, s := range suites {
		if !slices.Contains(want, s.name) && (s.notInAll || !slices.Contains(want, "all")) {
			continue
		}
		if jobs > 0 {
			s.jobs = jobs
		}
		if rs != nil {
			s.replicas = rs
		}
		if systems != "" {
			keep := strings.Split(systems, ",")
			s.systems = slices.DeleteFunc(slices.Clone(s.systems), func(sys string) bool { return !slices.Contains(keep, sys) })
			if len(s.systems) == 0 {
				continue
			}
		}
		if warmup > 0 {
			s.warmup = warmup
		}
		if window > 0 {
			s.window = window.Truncate(time.Second)
		}
		s.stagger = stagger
		if jitter > 0 {
			if !slices.Equal(s.systems, []string{sysRedcron}) {
				return fmt.Errorf("suite %s: -jitter needs -systems redcron (the other systems ignore jobs.yaml's jitter)", s.name)
			}
			s.jitter = jitter
		}
		if s.window < time.Second {
			return fmt.Errorf("suite %s: the window must be at least 1s", s.name)
		}
		cfg.suites = append(cfg.suites, s)
	}
	if len(cfg.suites) == 0 {
		return fmt.Errorf("no suite named in -suite %q", names)
	}
	return nil
}
