package main

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/bench/internal/host"
	"github.com/redcron/redcron/scheduler/schedule"
	"github.com/redcron/redcron/scheduler/store"
)

// scenario is one system with R replicas and replica 0's clock offset, on
// one plain redis-server (masters 0), a Redis Cluster of masters masters,
// or with quorum that many independent masters.
type scenario struct {
	system   string
	replicas int
	skew     time.Duration
	masters  int
	quorum   bool
}

func (sc scenario) String() string {
	s := fmt.Sprintf("%s, R=%d, skew %v", systemName(sc.system), sc.replicas, sc.skew)
	switch {
	case sc.quorum:
		s += fmt.Sprintf(", quorum of %d masters", sc.masters)
	case sc.masters > 0:
		s += fmt.Sprintf(", cluster of %d master(s)", sc.masters)
	}
	return s
}

func systemName(s string) string {
	switch s {
	case sysGocron:
		return "gocron v2 + redsync"
	case sysGocronKeyed:
		return "gocron v2 + key per second"
	case sysFloor:
		return "floor: bare shared claim"
	}
	return s
}

func (s suite) scenarios() []scenario {
	var out []scenario
	for _, n := range s.topologies() {
		for _, sys := range s.systems {
			for _, r := range s.replicas {
				for _, sk := range s.skews {
					out = append(out, scenario{sys, r, sk, n, s.quorum})
				}
			}
		}
	}
	return out
}

// topologies are the suite's masters, {0} (one plain server) when unset.
func (s suite) topologies() []int {
	if len(s.masters) == 0 {
		return []int{0}
	}
	return s.masters
}

// childWait bounds how long after its stop instant a child may take to
// hand in its report.
const childWait = 2 * time.Minute

func runParent(cfg config) error {
	fmt.Printf("schedbench: %s\nload at the start: %s\n\n", machine(), host.LoadAvg())
	plain, err := startBackend(0, false)
	if err != nil {
		return err
	}
	defer plain.stop()
	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{cfg.profiles, cfg.infoLogs} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var all []suiteResult
	for _, s := range cfg.suites {
		res, err := runSuite(cfg, s, plain, dir, self)
		if err != nil {
			return err
		}
		res.print(cfg.reps)
		all = append(all, res)
	}
	printTargets(all)
	fmt.Printf("\nload at the end: %s\n", host.LoadAvg())
	return nil
}

// runSuite runs every scenario of s cfg.reps times, interleaved, on the
// plain server or on the clusters it starts for them (and stops).
func runSuite(cfg config, s suite, plain *backend, dir, self string) (suiteResult, error) {
	res := suiteResult{suite: s, runs: map[scenario][]runMetrics{}}
	specs := jobSpecs(s.jobs, s.spec)
	backends := map[int]*backend{}
	paths := map[int]string{}
	defer func() {
		for n, b := range backends {
			if n > 0 {
				b.stop()
			}
		}
	}()
	for _, n := range s.topologies() {
		b := plain
		if n > 0 {
			var err error
			if b, err = startBackend(n, s.quorum); err != nil {
				return res, err
			}
		}
		backends[n] = b
		path, err := writeJobs(dir, s, n, specs, b.redisBlock())
		if err != nil {
			return res, err
		}
		paths[n] = path
	}
	scs := s.scenarios()
	for rep := range cfg.reps {
		for i := range scs {
			sc := scs[(i+rep)%len(scs)] // rotate: each scenario sees the machine at different moments
			fmt.Fprintf(os.Stderr, "schedbench: %s suite, %v, %d jobs, rep %d/%d (load %s)\n", s.name, sc, s.jobs, rep+1, cfg.reps, host.LoadAvg())
			name := fmt.Sprintf("%s-%s-R%d-skew%v-rep%d", s.name, sc.system, sc.replicas, sc.skew, rep+1)
			if sc.masters > 0 {
				name += fmt.Sprintf("-m%d", sc.masters)
			}
			if sc.quorum {
				name += "-quorum"
			}
			var out childFiles
			if cfg.profiles != "" {
				out.prof = filepath.Join(cfg.profiles, name)
			}
			if cfg.infoLogs != "" {
				out.log = filepath.Join(cfg.infoLogs, name)
			}
			m, err := runScenario(self, s, sc, paths[sc.masters], specs, backends[sc.masters], cfg.sample, out)
			if err != nil {
				return res, fmt.Errorf("%s suite, %v: %w", s.name, sc, err)
			}
			res.runs[sc] = append(res.runs[sc], m)
		}
	}
	return res, nil
}

// runScenario runs one scenario once: a fresh keyspace, R children, the
// window's snapshots, and the analysis.
// childFiles are the paths, less a replica's suffix, of what a scenario's
// children write: CPU and heap profiles (prof), info-level logs (log);
// empty for none.
type childFiles struct{ prof, log string }

func runScenario(self string, s suite, sc scenario, path string, specs []string, be *backend, sample time.Duration, out childFiles) (runMetrics, error) {
	ctx := context.Background()
	m := runMetrics{scenario: sc}
	if err := be.flush(ctx); err != nil {
		return m, err
	}

	// The window: whole seconds, starting at a slot of the suite's spec
	// (every second for the mixed set) at least warmup from now.
	anchor := s.spec
	if anchor == "" {
		anchor = "* * * * * *"
	}
	sched, err := schedule.Parse(anchor, time.UTC)
	if err != nil {
		return m, err
	}
	start := time.Now()
	fromT := sched.Next(start.Add(s.warmup - time.Second))
	from := fromT.Unix()
	to := from + int64(s.window/time.Second) - 1
	m.from, m.to = from, to
	// Snapshots bracket the window's work: a slot's claims start at the
	// slot, or skew earlier for a gocron replica whose clock leads.
	edge := func(sec int64) time.Time { return time.Unix(sec, 0).Add(-sc.skew - 150*time.Millisecond) }
	snaps := []time.Time{edge(from), edge(to + 1)}
	if s.sampled {
		snaps = sampleSnaps(from, to, sample, edge)
	}
	stop := time.Unix(to+1, 0).Add(cooldown)
	countRecords := s.records && sc.system == sysRedcron
	if countRecords {
		stop = time.Unix(to, 0).Add(s.retention() + recordSlack)
	}

	type done struct {
		rep childReport
		err error
	}
	results := make(chan done, sc.replicas)
	var cmds []*exec.Cmd
	for i := range sc.replicas {
		if i > 0 {
			time.Sleep(s.stagger)
		}
		spec := childSpec{System: sc.system, Replica: i, Replicas: sc.replicas, Addr: be.addr(), Config: path,
			From: from, To: to, Snaps: snaps, Stop: stop, Sampled: s.sampled}
		if i == 0 {
			spec.Offset = sc.skew
		}
		if out.prof != "" {
			spec.CPUProfile = fmt.Sprintf("%s-r%d.pprof", out.prof, i)
			spec.HeapProfile = fmt.Sprintf("%s-r%d-heap.pprof", out.prof, i)
		}
		if out.log != "" && sc.system == sysRedcron {
			spec.InfoLog = fmt.Sprintf("%s-r%d.log", out.log, i)
		}
		in, err := json.Marshal(spec)
		if err != nil {
			return m, err
		}
		cmd := exec.Command(self, "-child")
		cmd.Stdin = bytes.NewReader(in)
		cmd.Stderr = os.Stderr
		// A child dies with the bench.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return m, err
		}
		if err := cmd.Start(); err != nil {
			killAll(cmds)
			return m, err
		}
		cmds = append(cmds, cmd)
		go func() {
			var d done
			d.err = gob.NewDecoder(out).Decode(&d.rep)
			if werr := cmd.Wait(); werr != nil {
				d.err = errors.Join(d.err, fmt.Errorf("replica %d: %w", i, werr))
			}
			results <- d
		}()
	}

	var srvSnaps []serverSnap
	for i, at := range snaps {
		time.Sleep(time.Until(at))
		ss, err := be.info(ctx)
		if err != nil {
			killAll(cmds)
			return m, err
		}
		srvSnaps = append(srvSnaps, ss)
		if i == 0 || i == len(snaps)-1 {
			m.loads = append(m.loads, host.LoadAvg())
		}
	}

	timeout := time.NewTimer(time.Until(stop.Add(childWait)))
	defer timeout.Stop()
	var reports []childReport
	for range sc.replicas {
		select {
		case d := <-results:
			if d.err != nil {
				killAll(cmds)
				return m, d.err
			}
			reports = append(reports, d.rep)
		case <-timeout.C:
			killAll(cmds)
			return m, fmt.Errorf("replicas did not report within %v of their stop", childWait)
		}
	}
	for _, r := range reports {
		if r.Built.After(snaps[0].Add(-time.Second)) {
			return m, fmt.Errorf("replica %d was built only %v before the window: warmup %v is too short", r.Replica, snaps[0].Sub(r.Built), s.warmup)
		}
	}
	if countRecords {
		if m.skips, err = be.readSkips(ctx, len(specs), from, to); err != nil {
			return m, err
		}
	}
	if err := m.fill(reports, srvSnaps, specs); err != nil {
		return m, err
	}
	for _, js := range m.v.lastUnrecorded {
		jk := store.JobKeys(store.DefaultPrefix, jobName(int(js.job)))
		key := jk.Mark(time.Unix(js.slot, 0))
		if !be.quorum {
			h, err := be.keys.HGetAll(ctx, key).Result()
			if err != nil {
				return m, err
			}
			m.unrecordedMarks = append(m.unrecordedMarks, fmt.Sprintf("%s: %v", key, h))
			continue
		}
		// In quorum mode: what each master holds of the slot, mark and
		// history, and its meta hash.
		var each []string
		ms := strconv.FormatInt(js.slot*1000, 10)
		for i, c := range be.admins {
			h, err := c.HGetAll(ctx, key).Result()
			if err != nil {
				return m, err
			}
			hist, err := c.ZRangeByScore(ctx, jk.History(), &redis.ZRangeBy{Min: ms, Max: ms}).Result()
			if err != nil {
				return m, err
			}
			meta, err := c.HGetAll(ctx, jk.Meta()).Result()
			if err != nil {
				return m, err
			}
			each = append(each, fmt.Sprintf("master %d: mark %v, history %q, meta %v", i, h, hist, meta))
		}
		m.unrecordedMarks = append(m.unrecordedMarks, fmt.Sprintf("%s: %s", key, strings.Join(each, "; ")))
	}
	return m, nil
}

// recordSlack is how long the replicas keep running after the window's
// last slot's mark expires, the last moment its skip may be written
// (recorder.tooLate), so that a recorder that is behind has the whole of
// every slot's write window.
const recordSlack = time.Second

// readSkips reads the final records of the window's slots, as readSkips
// does, from the backend's keys; in quorum mode from every master, keeping
// those that a majority of the masters hold (as a quorum read would).
func (b *backend) readSkips(ctx context.Context, jobs int, from, to int64) (map[jobSlot]string, error) {
	if !b.quorum {
		return readSkips(ctx, b.keys, jobs, from, to)
	}
	held := map[jobSlot]int{}
	out := map[jobSlot]string{}
	for _, c := range b.admins {
		recs, err := readSkips(ctx, c, jobs, from, to)
		if err != nil {
			return nil, err
		}
		for k, v := range recs {
			held[k]++
			out[k] = v
		}
	}
	for k, n := range held {
		if n < len(b.admins)/2+1 {
			delete(out, k)
		}
	}
	return out, nil
}

// readSkips reads the final records of the window's slots from the jobs'
// history, by job index and slot: a skip's reason, or another record's
// outcome.
func readSkips(ctx context.Context, c redis.UniversalClient, jobs int, from, to int64) (map[jobSlot]string, error) {
	out := map[jobSlot]string{}
	const chunk = 1000
	for lo := 0; lo < jobs; lo += chunk {
		pipe := c.Pipeline()
		cmds := make([]*redis.StringSliceCmd, 0, chunk)
		for i := lo; i < min(lo+chunk, jobs); i++ {
			key := store.JobKeys(store.DefaultPrefix, jobName(i)).History()
			cmds = append(cmds, pipe.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: strconv.FormatInt(from*1000, 10), Max: strconv.FormatInt(to*1000, 10)}))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reading the skip records: %w", err)
		}
		for k, cmd := range cmds {
			for _, h := range cmd.Val() {
				r, err := store.ParseRecord(h)
				if err != nil {
					return nil, err
				}
				// A skip by its reason; a run that started without reaching
				// the job's function (its lease lost first) by its outcome.
				what := r.Reason
				if r.Outcome != store.OutcomeSkipped {
					what = r.Outcome
					if r.Reason != "" {
						what += " (" + r.Reason + ")"
					}
				}
				out[jobSlot{int32(lo + k), r.Slot.Unix()}] = what
			}
		}
	}
	return out, nil
}

// killAll kills the children the bench started.
func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
}
