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
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/scheduler/schedule"
)

// scenario is one system with R replicas and replica 0's clock offset.
type scenario struct {
	system   string
	replicas int
	skew     time.Duration
}

func (sc scenario) String() string {
	return fmt.Sprintf("%s, R=%d, skew %v", systemName(sc.system), sc.replicas, sc.skew)
}

func systemName(s string) string {
	switch s {
	case sysGocron:
		return "gocron v2 + redsync"
	case sysGocronKeyed:
		return "gocron v2 + key per second"
	}
	return s
}

func (s suite) scenarios() []scenario {
	var out []scenario
	for _, sys := range s.systems {
		for _, r := range s.replicas {
			for _, sk := range s.skews {
				out = append(out, scenario{sys, r, sk})
			}
		}
	}
	return out
}

// childWait bounds how long after its stop instant a child may take to
// hand in its report.
const childWait = 2 * time.Minute

func runParent(cfg config) error {
	fmt.Printf("schedbench: %s\nload at the start: %s\n\n", machine(), loadavg())
	srv, err := redistest.StartServer(redistest.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.profiles != "" {
		if err := os.MkdirAll(cfg.profiles, 0o755); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var all []suiteResult
	for _, s := range cfg.suites {
		specs := jobSpecs(s.jobs, s.spec)
		path, err := writeJobs(dir, s, specs, srv.Addr())
		if err != nil {
			return err
		}
		res := suiteResult{suite: s, runs: map[scenario][]runMetrics{}}
		scs := s.scenarios()
		for rep := range cfg.reps {
			for i := range scs {
				sc := scs[(i+rep)%len(scs)] // rotate: each scenario sees the machine at different moments
				fmt.Fprintf(os.Stderr, "schedbench: %s suite, %v, %d jobs, rep %d/%d (load %s)\n", s.name, sc, s.jobs, rep+1, cfg.reps, loadavg())
				prof := ""
				if cfg.profiles != "" {
					prof = filepath.Join(cfg.profiles, fmt.Sprintf("%s-%s-R%d-skew%v-rep%d", s.name, sc.system, sc.replicas, sc.skew, rep+1))
				}
				m, err := runScenario(self, s, sc, path, specs, srv, admin, prof)
				if err != nil {
					return fmt.Errorf("%s suite, %v: %w", s.name, sc, err)
				}
				res.runs[sc] = append(res.runs[sc], m)
			}
		}
		res.print(cfg.reps)
		all = append(all, res)
	}
	printTargets(all)
	fmt.Printf("\nload at the end: %s\n", loadavg())
	return nil
}

// runScenario runs one scenario once: a fresh keyspace, R children, the
// window's snapshots, and the analysis.
func runScenario(self string, s suite, sc scenario, path string, specs []string, srv *redistest.Server, admin *redis.Client, prof string) (runMetrics, error) {
	ctx := context.Background()
	m := runMetrics{scenario: sc}
	if err := admin.FlushAll(ctx).Err(); err != nil {
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
	stop := time.Unix(to+1, 0).Add(cooldown)

	type done struct {
		rep childReport
		err error
	}
	results := make(chan done, sc.replicas)
	var cmds []*exec.Cmd
	for i := range sc.replicas {
		spec := childSpec{System: sc.system, Replica: i, Addr: srv.Addr(), Config: path,
			From: from, To: to, Snaps: snaps, Stop: stop}
		if i == 0 {
			spec.Offset = sc.skew
		}
		if prof != "" {
			spec.CPUProfile = fmt.Sprintf("%s-r%d.pprof", prof, i)
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
	for _, at := range snaps {
		time.Sleep(time.Until(at))
		ss, err := serverInfo(ctx, admin)
		if err != nil {
			killAll(cmds)
			return m, err
		}
		srvSnaps = append(srvSnaps, ss)
		m.loads = append(m.loads, loadavg())
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
	return m, m.fill(reports, srvSnaps, specs)
}

// killAll kills the children the bench started.
func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
}
