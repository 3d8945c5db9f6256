package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// runMetrics is one run of one scenario, over its steady window.
type runMetrics struct {
	scenario scenario
	from, to int64
	v        verdict
	skips    map[jobSlot]string // the window's skip records, when read (suite.records)
	// unrecordedMarks are the marks of some misses without a record.
	unrecordedMarks []string
	recorderLogs    []string // the replicas' lines on skip records not written
	// kinds are the top-level commands all replicas sent in the window
	// (their hooks), by kind; hookScripts their EVALSHA and EVAL.
	kinds       map[string]int64
	hookScripts int64
	// carried are the script calls that batch.lua calls carried, by kind.
	carried map[string]int64
	// details and failed are the same commands by kind and what they are
	// (commandDetail), all sent and those whose reply was an error.
	details, failed map[string]int64
	// From INFO over the window: EVALSHA and EVAL calls (top-level only:
	// scripts cannot call them), every call (scripts' included), CPU.
	srvScripts, srvCalls int64
	srvUsec              map[string]int64 // commandstats usec in the window, by command
	redisCPU             time.Duration
	masterCPU            []time.Duration // redisCPU of each master (one without a cluster)
	seconds              float64
	cpu                  []time.Duration // per replica, in the window
	mem                  []memSnap       // per replica, at the window's end
	parse, build         []time.Duration // per replica: jobs.Load, then building the scheduler
	builtHeap            []uint64        // per replica: live heap once built
	logs                 int
	firstLogs            []string
	// Redis at the window's start and end: used_memory and keys.
	memory, keys [2]int64
	evicted      int64
	loads        []string // load average at the window's start and end
	// samples are Redis and the replicas at every snapshot of a sampled
	// suite's window (see soak.go).
	samples []sample
}

func (m *runMetrics) fill(reports []childReport, ss []serverSnap, specs []string) error {
	var es []entry
	m.kinds = map[string]int64{}
	m.details, m.failed, m.carried = map[string]int64{}, map[string]int64{}, map[string]int64{}
	for _, r := range reports {
		for _, e := range r.Entries {
			e.Replica = int32(r.Replica)
			es = append(es, e)
		}
		a, b := r.Snaps[0], r.Snaps[len(r.Snaps)-1]
		for k, v := range b.Kinds {
			m.kinds[k] += v - a.Kinds[k]
		}
		for k, v := range b.Details {
			m.details[k] += v - a.Details[k]
		}
		for k, v := range b.Failed {
			m.failed[k] += v - a.Failed[k]
		}
		for k, v := range b.Carried {
			m.carried[k] += v - a.Carried[k]
		}
		m.hookScripts += b.Scripts - a.Scripts
		m.cpu = append(m.cpu, b.CPU-a.CPU)
		m.mem = append(m.mem, r.Mem)
		m.parse = append(m.parse, r.Parse)
		m.build = append(m.build, r.Build)
		m.builtHeap = append(m.builtHeap, r.BuiltHeap)
		m.logs += r.Logs
		for _, l := range r.Recorder {
			m.recorderLogs = append(m.recorderLogs, fmt.Sprintf("r%d: %s", r.Replica, l))
		}
		if len(m.firstLogs) < 5 {
			m.firstLogs = append(m.firstLogs, r.FirstLogs...)
		}
	}
	a, b := ss[0], ss[len(ss)-1]
	m.srvScripts = b.calls["evalsha"] + b.calls["eval"] - a.calls["evalsha"] - a.calls["eval"]
	m.srvCalls = b.allCalls() - a.allCalls()
	m.srvUsec = map[string]int64{}
	for k, v := range b.usec {
		m.srvUsec[k] = v - a.usec[k]
	}
	m.redisCPU = b.cpu - a.cpu
	for i := range b.cpus {
		m.masterCPU = append(m.masterCPU, b.cpus[i]-a.cpus[i])
	}
	m.samples = samples(reports, ss)
	m.seconds = b.at.Sub(a.at).Seconds()
	m.memory = [2]int64{a.memory, b.memory}
	m.keys = [2]int64{a.keys, b.keys}
	m.evicted = b.evicted - a.evicted
	var err error
	m.v, err = analyse(es, specs, m.scenario.replicas, m.from, m.to, m.skips)
	return err
}

func (m *runMetrics) firings() float64 { return float64(m.v.expected) }

// detailLine lists the commands sent per firing by kind and what they are,
// the most first, down to 0.005 a firing, each with how many of them failed
// per firing when any did.
func (m *runMetrics) detailLine() string {
	keys := slices.SortedFunc(maps.Keys(m.details), func(a, b string) int {
		return cmp.Or(cmp.Compare(m.details[b], m.details[a]), cmp.Compare(a, b))
	})
	var parts []string
	for _, k := range keys {
		per := float64(m.details[k]) / m.firings()
		if per < 0.005 {
			break
		}
		p := fmt.Sprintf("%s %.3f", k, per)
		if f := m.failed[k]; f > 0 {
			p += fmt.Sprintf(" (%.3f)", float64(f)/m.firings())
		}
		parts = append(parts, p)
	}
	var failed int64
	for _, v := range m.failed {
		failed += v
	}
	return fmt.Sprintf("[%s]; failed in all %.3f", strings.Join(parts, "; "), float64(failed)/m.firings())
}

// usecLine splits Redis's command time per firing (INFO commandstats usec
// over the window) into the scripts' calls (EVALSHA and EVAL, which count
// the commands their scripts call, listed after them), the top-level
// commands, and the rest of Redis's main-thread CPU: reading, parsing and
// answering commands, expiring keys, the server's own cron.
func (m *runMetrics) usecLine() string {
	per := func(us int64) float64 { return float64(us) / m.firings() }
	var scripts, top, inner int64
	var parts []string
	names := slices.SortedFunc(maps.Keys(m.srvUsec), func(a, b string) int {
		return cmp.Or(cmp.Compare(m.srvUsec[b], m.srvUsec[a]), cmp.Compare(a, b))
	})
	for _, k := range names {
		us := m.srvUsec[k]
		switch k {
		case "evalsha", "eval":
			scripts += us
		case "info", "dbsize", "hello":
			continue // the bench's own, and handshakes
		default:
			if strings.HasPrefix(k, "client") || strings.HasPrefix(k, "cluster") {
				continue
			}
			if per(us) >= 0.05 {
				parts = append(parts, fmt.Sprintf("%s %.2f", k, per(us)))
			}
			inner += us // inside scripts or sent alone: split below
		}
	}
	// The commands the hooks saw sent alone are top-level; the rest of the
	// calls were made by scripts. Without per-call attribution, top-level
	// time is taken at the calls' mean.
	if calls := m.srvCalls - m.srvScripts; calls > 0 {
		topCalls := m.commands() - m.hookScripts
		top = inner * max(topCalls, 0) / calls
	}
	rest := m.redisCPU.Microseconds() - scripts - top
	return fmt.Sprintf("scripts (EVALSHA, EVAL) %.1f, of which the commands they call about %.1f and their Lua and calling convention about %.1f; commands sent alone about %.1f; INFO cpu less all that (I/O, parsing, replies, expiry, cron; less any time Redis was descheduled inside a command, which commandstats counts) %.1f; by command, in scripts or not: [%s]",
		per(scripts), per(inner-top), per(scripts-(inner-top)), per(top), per(rest), strings.Join(parts, "; "))
}

func (m *runMetrics) commands() int64 {
	var n int64
	for _, v := range m.kinds {
		n += v
	}
	return n
}

// shareDev is the largest deviation of a replica's share of the runs from
// 1/R, in percent of 1/R.
func (m *runMetrics) shareDev() float64 {
	if m.v.runs == 0 {
		return 0
	}
	worst := 0.0
	for _, w := range m.v.wins {
		worst = max(worst, math.Abs(float64(w)/float64(m.v.runs)*float64(len(m.v.wins))-1))
	}
	return 100 * worst
}

func maxOf[T any](xs []T, f func(T) float64) float64 {
	out := 0.0
	for _, x := range xs {
		out = max(out, f(x))
	}
	return out
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const mib = 1 << 20

// column is one figure of a run.
type column struct {
	name   string
	format string // for one value
	get    func(*runMetrics) float64
}

var (
	colFirings    = column{"firings", "%.0f", func(m *runMetrics) float64 { return m.firings() }}
	colRuns       = column{"runs", "%.0f", func(m *runMetrics) float64 { return float64(m.v.runs) }}
	colDups       = column{"duplicates", "%.0f", func(m *runMetrics) float64 { return float64(m.v.duplicates) }}
	colMisses     = column{"misses", "%.0f", func(m *runMetrics) float64 { return float64(m.v.misses) }}
	colUnrecorded = column{"misses without a record", "%.0f", func(m *runMetrics) float64 {
		if !m.v.counted {
			return math.NaN() // not read: never "met"
		}
		return float64(m.v.unrecorded)
	}}
	colEarly      = column{"early starts", "%.0f", func(m *runMetrics) float64 { return float64(m.v.early) }}
	colOff        = column{"off-schedule runs", "%.0f", func(m *runMetrics) float64 { return float64(m.v.offSchedule) }}
	colFence      = column{"fence regressions", "%.0f", func(m *runMetrics) float64 { return float64(m.v.fenceRegressions) }}
	colShare      = column{"largest share off 1/R", "%.1f %%", func(m *runMetrics) float64 { return m.shareDev() }}
	colLogs       = column{"warn log lines", "%.0f", func(m *runMetrics) float64 { return float64(m.logs) }}
	colP50        = column{"lag p50", "%.1f ms", func(m *runMetrics) float64 { return msOf(pct(m.v.lag, 50)) }}
	colP99        = column{"lag p99", "%.1f ms", func(m *runMetrics) float64 { return msOf(pct(m.v.lag, 99)) }}
	colMax        = column{"lag max", "%.1f ms", func(m *runMetrics) float64 { return msOf(pct(m.v.lag, 100)) }}
	colLatest     = column{"last start of a slot, worst slot", "%.1f ms", func(m *runMetrics) float64 { return msOf(pct(m.v.latest, 100)) }}
	colCmds       = column{"commands / firing", "%.2f", func(m *runMetrics) float64 { return float64(m.commands()) / m.firings() }}
	colClaims     = column{"claims / firing", "%.2f", func(m *runMetrics) float64 { return float64(m.kinds[kindClaim]+m.carried[kindClaim]) / m.firings() }}
	colFinishes   = column{"finishes / firing", "%.2f", func(m *runMetrics) float64 { return float64(m.kinds[kindFinish]+m.carried[kindFinish]) / m.firings() }}
	colBackground = column{"beats + clock + other / firing", "%.3f", func(m *runMetrics) float64 {
		return float64(m.kinds[kindBeat]+m.kinds[kindClock]+m.kinds[kindOther]+m.carried[kindBeat]+m.carried[kindOther]) / m.firings()
	}}
	colBatches   = column{"batch.lua commands / firing", "%.3f", func(m *runMetrics) float64 { return float64(m.kinds[kindBatch]) / m.firings() }}
	colRedisCPU  = column{"Redis CPU / firing", "%.1f us", func(m *runMetrics) float64 { return float64(m.redisCPU.Microseconds()) / m.firings() }}
	colRedisCore = column{"Redis CPU", "%.1f %% core", func(m *runMetrics) float64 { return 100 * m.redisCPU.Seconds() / m.seconds }}
	colCPU       = column{"CPU / replica (mean)", "%.1f %% core", func(m *runMetrics) float64 {
		var t time.Duration
		for _, c := range m.cpu {
			t += c
		}
		return 100 * t.Seconds() / m.seconds / float64(len(m.cpu))
	}}
	colCPUAll = column{"CPU, all replicas", "%.1f %% core", func(m *runMetrics) float64 {
		var t time.Duration
		for _, c := range m.cpu {
			t += c
		}
		return 100 * t.Seconds() / m.seconds
	}}
	colRSS = column{"RSS, largest replica", "%.0f MiB", func(m *runMetrics) float64 {
		return maxOf(m.mem, func(x memSnap) float64 { return float64(x.RSS) / mib })
	}}
	colHWM = column{"peak RSS, largest", "%.0f MiB", func(m *runMetrics) float64 {
		return maxOf(m.mem, func(x memSnap) float64 { return float64(x.HWM) / mib })
	}}
	colHeap = column{"Go heap in use, largest", "%.0f MiB", func(m *runMetrics) float64 {
		return maxOf(m.mem, func(x memSnap) float64 { return float64(x.Heap) / mib })
	}}
	colLive = column{"live heap after GC, largest", "%.0f MiB", func(m *runMetrics) float64 {
		return maxOf(m.mem, func(x memSnap) float64 { return float64(x.Live) / mib })
	}}
	colLoad = column{"load time (jobs.Load + build), slowest replica", "%.2f s", func(m *runMetrics) float64 {
		out := 0.0
		for i := range m.parse {
			out = max(out, (m.parse[i] + m.build[i]).Seconds())
		}
		return out
	}}
	colParse     = column{"jobs.Load, slowest", "%.2f s", func(m *runMetrics) float64 { return maxOf(m.parse, time.Duration.Seconds) }}
	colBuild     = column{"build, slowest", "%.2f s", func(m *runMetrics) float64 { return maxOf(m.build, time.Duration.Seconds) }}
	colBuiltHeap = column{"live heap once built, largest", "%.0f MiB", func(m *runMetrics) float64 {
		return maxOf(m.builtHeap, func(x uint64) float64 { return float64(x) / mib })
	}}
	colMemFrom = column{"Redis memory, window start", "%.1f MiB", func(m *runMetrics) float64 { return float64(m.memory[0]) / mib }}
	colMemTo   = column{"Redis memory, window end", "%.1f MiB", func(m *runMetrics) float64 { return float64(m.memory[1]) / mib }}
	colKeyFrom = column{"keys, window start", "%.0f", func(m *runMetrics) float64 { return float64(m.keys[0]) }}
	colKeyTo   = column{"keys, window end", "%.0f", func(m *runMetrics) float64 { return float64(m.keys[1]) }}
	colInside  = column{"commands scripts ran inside / firing", "%.1f", func(m *runMetrics) float64 {
		if m.hookScripts == 0 {
			// No script was sent, so none ran a command; INFO and the hooks
			// count the window's edges a few commands apart ("-0.0").
			return 0
		}
		return float64(m.srvCalls-m.commands()) / m.firings()
	}}
	colCheck = column{"EVALSHA+EVAL: INFO / hooks", "%.3f", func(m *runMetrics) float64 {
		if m.hookScripts == 0 {
			return 1 // none sent, none seen
		}
		return float64(m.srvScripts) / float64(m.hookScripts)
	}}
)

// values of c over runs, and their min, median and max.
func summary(runs []runMetrics, c column) (lo, med, hi float64) {
	xs := make([]float64, len(runs))
	for i := range runs {
		xs[i] = c.get(&runs[i])
	}
	slices.Sort(xs)
	med = xs[len(xs)/2]
	if len(xs)%2 == 0 {
		med = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	return xs[0], med, xs[len(xs)-1]
}

// cell is "median [min-max]", or one value when they agree.
func cell(runs []runMetrics, c column) string {
	lo, med, hi := summary(runs, c)
	one := func(x float64) string { return fmt.Sprintf(c.format, x) }
	if one(lo) == one(hi) {
		return one(med)
	}
	num := func(x float64) string { return strings.Fields(one(x))[0] }
	return fmt.Sprintf("%s [%s-%s]", one(med), num(lo), num(hi))
}

type suiteResult struct {
	suite suite
	runs  map[scenario][]runMetrics
}

func (r suiteResult) table(title string, cols []column) {
	fmt.Printf("\n%s\n\n| scenario |", title)
	for _, c := range cols {
		fmt.Printf(" %s |", c.name)
	}
	fmt.Printf("\n| --- |%s\n", strings.Repeat(" ---: |", len(cols)))
	for _, sc := range r.suite.scenarios() {
		fmt.Printf("| %v |", sc)
		for _, c := range cols {
			fmt.Printf(" %s |", cell(r.runs[sc], c))
		}
		fmt.Println()
	}
}

func (r suiteResult) print(reps int) {
	s := r.suite
	spec := s.spec
	if spec == "" {
		spec = "mixed: 99 % hourly, 1 % every minute"
	}
	starts := "replicas started together"
	if s.stagger > 0 {
		starts = fmt.Sprintf("replicas started %v apart", s.stagger)
	}
	if s.jitter > 0 {
		starts += fmt.Sprintf("; every job's jitter %v (lag counts from the slot)", s.jitter)
	}
	fmt.Printf("\n## Suite %s: %d jobs on %q, catchup_window %v (mark retention %v), history keep %d; warmup %v, window %v; %s; %d interleaved reps; cells: median [min-max]\n",
		s.name, s.jobs, spec, s.catchup, s.retention(), s.keep, s.warmup, s.window, starts, reps)
	r.table("Outcomes (runs of the window's slots)", []column{colFirings, colRuns, colDups, colMisses, colEarly, colOff, colFence, colShare, colLogs})
	r.table("Fire lag: run start minus slot, on the real clock (Redis's)", []column{colP50, colP99, colMax, colLatest})
	r.table("Cost: top-level commands counted by each replica's client hook (claims, finishes and other count script calls, also those that a batch.lua command carries); CPU from INFO and getrusage", []column{colCmds, colBatches, colClaims, colFinishes, colBackground, colRedisCPU, colRedisCore, colCPU, colCPUAll})
	r.table("Memory and load (each replica loads jobs.yaml and builds its scheduler as cmd/redcron does)", []column{colLoad, colParse, colBuild, colBuiltHeap, colRSS, colHWM, colHeap, colLive})
	r.table("Steady state and cross-checks", []column{colMemFrom, colMemTo, colKeyFrom, colKeyTo, colInside, colCheck})
	fmt.Println()
	for _, sc := range s.scenarios() {
		runs := r.runs[sc]
		m := runs[len(runs)/2]
		var wins []string
		if sc.replicas <= 10 {
			for i, w := range m.v.wins {
				wins = append(wins, fmt.Sprintf("%s %.1f %%", replicaName(i), 100*float64(w)/float64(max(m.v.runs, 1))))
			}
		}
		fmt.Printf("- %v, rep %d: runs per replica [%s]; load %s; Redis evicted %d keys\n",
			sc, len(runs)/2+1, strings.Join(wins, ", "), strings.Join(m.loads, " -> "), m.evicted)
		fmt.Printf("  - commands / firing by kind and what they are (failed replies): %s\n", m.detailLine())
		if m.redisCPU > 0 {
			fmt.Printf("  - Redis time per firing, us (commandstats usec and INFO cpu over the window): %s\n", m.usecLine())
		}
		for _, r := range m.v.regressions {
			fmt.Printf("  - a fence regression: %s\n", r)
		}
		if m.v.counted {
			reasons := slices.Sorted(maps.Keys(m.v.recorded))
			var parts []string
			for _, k := range reasons {
				parts = append(parts, fmt.Sprintf("%s %d", k, m.v.recorded[k]))
			}
			fmt.Printf("  - misses with a record (skips by reason, other records by outcome): [%s]; without a record: %d\n", strings.Join(parts, ", "), m.v.unrecorded)
			if len(m.v.unrecordedAt) > 0 {
				secs := slices.Sorted(maps.Keys(m.v.unrecordedAt))
				var at []string
				for _, sec := range secs {
					at = append(at, fmt.Sprintf("+%ds %d", sec, m.v.unrecordedAt[sec]))
				}
				fmt.Printf("  - misses without a record, by their slot's second in the window: %s\n", strings.Join(at, ", "))
			}
			for _, mk := range m.unrecordedMarks {
				fmt.Printf("  - a miss without a record, its mark: %s\n", mk)
			}
		}
		for _, l := range m.recorderLogs {
			fmt.Printf("  - recorder log: %s", l)
		}
		for _, l := range m.firstLogs {
			fmt.Printf("  - log: %s", l)
		}
		// The other reps' first warn lines too, where they missed firings
		// or logged any: a rep other than the median may be the one that
		// went wrong.
		for i, o := range runs {
			if i == len(runs)/2 || (o.v.misses == 0 && o.logs == 0) {
				continue
			}
			fmt.Printf("  - rep %d: %d misses, %d warn lines; its first ones:\n", i+1, o.v.misses, o.logs)
			for _, l := range o.firstLogs {
				fmt.Printf("    - log: %s", l)
			}
		}
	}
	if s.name == "compare" {
		r.peers()
	}
	if s.masters != nil {
		r.topologies()
	}
	if s.sampled {
		r.soak()
	}
}

// peers prints redcron beside the gocron setups, as ratios of medians.
func (r suiteResult) peers() {
	cols := []column{colDups, colMisses, colEarly, colP50, colP99, colCmds, colRedisCPU, colCPU}
	for _, sk := range r.suite.skews {
		base := r.runs[scenario{sysRedcron, 3, sk, 0, false}]
		if base == nil {
			continue
		}
		fmt.Printf("\nPeers, skew %v (medians; ratio peer / redcron)\n\n| metric | redcron |", sk)
		var peers []string
		for _, sys := range []string{sysFloor, sysGocron, sysGocronKeyed} {
			if r.runs[scenario{sys, 3, sk, 0, false}] != nil {
				peers = append(peers, sys)
				fmt.Printf(" %s | ratio |", systemName(sys))
			}
		}
		fmt.Printf("\n| --- | ---: |%s\n", strings.Repeat(" ---: | ---: |", len(peers)))
		for _, c := range cols {
			_, x, _ := summary(base, c)
			fmt.Printf("| %s | %s |", c.name, fmt.Sprintf(c.format, x))
			for _, sys := range peers {
				_, y, _ := summary(r.runs[scenario{sys, 3, sk, 0, false}], c)
				fmt.Printf(" %s | %s |", fmt.Sprintf(c.format, y), ratio(y, x))
			}
			fmt.Println()
		}
	}
}

func ratio(a, b float64) string {
	switch {
	case a < 0 || b < 0:
		return "n/a (early)"
	case b == 0 && a == 0:
		return "="
	case b == 0:
		return "inf (redcron 0)"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// target is a figure with its limit (met when at most limit).
type target struct {
	suite string
	sc    scenario
	what  string
	col   column
	limit float64
}

var targets = []target{
	{"compare", scenario{sysRedcron, 3, 0, 0, false}, "0 duplicates", colDups, 0},
	{"compare", scenario{sysRedcron, 3, 0, 0, false}, "0 misses", colMisses, 0},
	{"compare", scenario{sysRedcron, 3, 0, 0, false}, "p99 fire lag <= 25 ms at 1,000 firings/s", colP99, 25},
	{"compare", scenario{sysRedcron, 3, 0, 0, false}, "commands / firing <= 3", colCmds, 3},
	{"compare", scenario{sysRedcron, 3, 0, 0, false}, "runs per replica 1/R +- 10 %", colShare, 10},
	{"compare", scenario{sysRedcron, 3, 300 * time.Millisecond, 0, false}, "0 duplicates, one clock 300 ms ahead", colDups, 0},
	{"compare", scenario{sysRedcron, 3, 300 * time.Millisecond, 0, false}, "0 misses, one clock 300 ms ahead", colMisses, 0},
	{"compare", scenario{sysRedcron, 3, 300 * time.Millisecond, 0, false}, "runs per replica 1/R +- 10 %, one clock 300 ms ahead", colShare, 10},
	{"replicas", scenario{sysRedcron, 3, 0, 0, false}, "commands / firing <= 3, R = 3", colCmds, 3},
	{"replicas", scenario{sysRedcron, 10, 0, 0, false}, "commands / firing <= 3, R = 10", colCmds, 3},
	{"replicas", scenario{sysRedcron, 30, 0, 0, false}, "commands / firing <= 3, R = 30", colCmds, 3},
	{"rate", scenario{sysRedcron, 3, 0, 0, false}, "10,000 firings/s for 60 s: 0 duplicates", colDups, 0},
	{"rate", scenario{sysRedcron, 3, 0, 0, false}, "10,000 firings/s for 60 s: 0 misses", colMisses, 0},
	{"rate", scenario{sysRedcron, 3, 0, 0, false}, "10,000 firings/s for 60 s: p99 <= 100 ms", colP99, 100},
	{"rate", scenario{sysRedcron, 3, 0, 0, false}, "overload degrades, never drops: every miss has a record", colUnrecorded, 0},
	{"burst", scenario{sysRedcron, 3, 0, 0, false}, "10,000 jobs at one instant: 0 duplicates", colDups, 0},
	{"burst", scenario{sysRedcron, 3, 0, 0, false}, "10,000 jobs at one instant: 0 misses", colMisses, 0},
	{"burst", scenario{sysRedcron, 3, 0, 0, false}, "10,000 jobs at one instant: the last starts within 1 s", colLatest, 1000},
	{"burst", scenario{sysRedcron, 3, 0, 0, false}, "10,000 jobs at one instant: every miss has a record", colUnrecorded, 0},
	{"cluster", scenario{sysRedcron, 3, 0, 1, false}, "1 master: every miss has a record", colUnrecorded, 0},
	{"cluster", scenario{sysRedcron, 3, 0, 3, false}, "3 masters: every miss has a record", colUnrecorded, 0},
	{"quorum", scenario{sysRedcron, 3, 0, 3, true}, "quorum mode, 3 masters: every miss has a record", colUnrecorded, 0},
	{"load", scenario{sysRedcron, 3, 0, 0, false}, "100,000 jobs load in <= 2 s", colLoad, 2},
	{"load", scenario{sysRedcron, 3, 0, 0, false}, "100,000 jobs: RSS <= 200 MiB per replica", colRSS, 200},
	{"load", scenario{sysRedcron, 3, 0, 0, false}, "100,000 jobs: peak RSS <= 200 MiB per replica", colHWM, 200},
	{"load", scenario{sysRedcron, 3, 0, 0, false}, "100,000 jobs: Go heap in use <= 200 MiB per replica", colHeap, 200},
	{"load", scenario{sysRedcron, 3, 0, 0, false}, "100,000 jobs: live heap <= 200 MiB per replica", colLive, 200},
}

// printTargets prints every target of the suites that ran: met when every
// repetition meets it, "median only" when the median does.
func printTargets(all []suiteResult) {
	fmt.Printf("\n## Targets\n\n| suite | target | figure: median [min-max] | met |\n| --- | --- | ---: | --- |\n")
	for _, t := range targets {
		for _, r := range all {
			runs := r.runs[t.sc]
			if r.suite.name != t.suite || runs == nil {
				continue
			}
			_, med, hi := summary(runs, t.col)
			met := "no"
			switch {
			case hi <= t.limit:
				met = "yes"
			case med <= t.limit:
				met = "median only"
			}
			fmt.Printf("| %s | %s | %s | %s |\n", t.suite, t.what, cell(runs, t.col), met)
		}
	}
}
