package main

// TestOperations: what an operator does to a live cluster, with the built
// binary as replicas over one real redis-server and the control commands
// run as a user would: status, history, next, trigger --wait, pause with a
// note, resume, replicas; config drift between replicas, detected and
// cleared; SIGHUP with an invalid file (refused, counted) and a valid one
// (applied); and metrics that exist at zero before any run.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/scheduler/statusapi"
	"github.com/redcron/redcron/scheduler/store"
)

// opsConfig is the cluster's jobs.yaml; tick's schedule is a parameter so
// that a replica can be given a drifting copy.
func opsConfig(prefix, tick string, extra string) string {
	return fmt.Sprintf(`redis: {prefix: %s}
shutdown_grace: 2s
defaults:
  kill_grace: 1s
  lock_ttl: 3s
jobs:
  tick:
    schedule: %q
    command: ["sh", "-c", "echo tick $REDCRON_SLOT"]
  fails:
    schedule: "*/2 * * * * *"
    command: ["sh", "-c", "echo boom; exit 3"]
  sleepy:
    schedule: "*/3 * * * * *"
    timeout: 1s
    command: ["sleep", "5"]
  long:
    schedule: "* * * * * *"
    overlap: forbid
    command: ["sleep", "3"]
  report:
    schedule: "0 0 1 1 *"
    command: ["sh", "-c", "echo manual=$REDCRON_MANUAL"]
%s`, prefix, tick, extra)
}

// ctl runs a control command of the binary against the config and returns
// its exit code and stdout (stderr goes into the failure message).
func ctl(t *testing.T, bin, config, url string, args ...string) (int, string) {
	t.Helper()
	args = append(args, "--config", config, "--redis", url)
	cmd := exec.Command(bin, args...)
	cmd.Env = e2eEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("redcron %v: still running after 60s", args)
	}
	if errb.Len() > 0 {
		t.Logf("redcron %s stderr: %s", args[0], strings.TrimSpace(errb.String()))
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// httpGet fetches url's body (status 200 expected).
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// eventually polls cond every 100ms for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusOf runs `redcron status --json`.
func statusOf(t *testing.T, bin, config, url string) statusapi.Snapshot {
	t.Helper()
	code, out := ctl(t, bin, config, url, "status", "--json")
	var snap statusapi.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil || code != exitOK {
		t.Fatalf("status --json: exit %d, %v:\n%s", code, err, out)
	}
	return snap
}

func jobIn(snap statusapi.Snapshot, name string) statusapi.JobStatus {
	for _, j := range snap.Jobs {
		if j.Job == name {
			return j
		}
	}
	return statusapi.JobStatus{}
}

func historyOf(t *testing.T, bin, config, url, job string) []store.Record {
	t.Helper()
	code, out := ctl(t, bin, config, url, "history", job, "--limit", "100", "--json")
	var recs []store.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil || code != exitOK {
		t.Fatalf("history %s --json: exit %d, %v:\n%s", job, code, err, out)
	}
	return recs
}

func TestOperations(t *testing.T) {
	const prefix = "ops"
	bin := buildRedcron(t)
	srv := redistest.Start(t, redistest.Options{AOF: true, Args: []string{"--maxmemory-policy", "noeviction"}})
	url := srv.URL()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfgA := write("a.yaml", opsConfig(prefix, "* * * * * *", ""))
	cfgB := write("b.yaml", opsConfig(prefix, "* * * * * *", ""))
	httpA, httpB := freeAddr(t), freeAddr(t)
	replica := func(name, config, addr string) *e2eProc {
		return startRedcronEnv(t, bin, name, filepath.Join(dir, name+".log"), []string{"REDCRON_HTTP_TOKEN=s3cret"},
			"run", "--config", config, "--redis", url, "--replica", name, "--http", addr, "--log-level", "info")
	}
	a := replica("ops-a", cfgA, httpA)
	b := replica("ops-b", cfgB, httpB)
	for _, p := range []*e2eProc{a, b} {
		p.waitLog(t, "redcron started", e2eStartTimeout)
	}

	// Metrics exist at zero before any run: report never runs on its own.
	metrics := httpGet(t, "http://"+httpA+"/metrics")
	for _, want := range []string{
		`redcron_runs_total{job="report",outcome="ok"} 0`,
		`redcron_runs_total{job="report",outcome="error"} 0`,
		`redcron_skipped_slots_total{job="report",reason="paused"} 0`,
		`redcron_skipped_slots_total{job="report",reason="overlap"} 0`,
		`redcron_running{job="report"} 0`,
		`redcron_config_drift{job="report"} 0`,
		`redcron_config_reload_errors_total 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics before any run: no %q", want)
		}
	}

	// Both replicas register; every outcome shows in the ledger.
	eventually(t, 15*time.Second, "two live replicas in status", func() bool { return len(statusOf(t, bin, cfgA, url).Replicas) == 2 })
	eventually(t, 20*time.Second, "an ok, an error, a timeout and an overlap skip", func() bool {
		return hasRecord(historyOf(t, bin, cfgA, url, "tick"), store.OutcomeOK, "") &&
			hasRecord(historyOf(t, bin, cfgA, url, "fails"), store.OutcomeError, "") &&
			hasRecord(historyOf(t, bin, cfgA, url, "sleepy"), store.OutcomeTimeout, "") &&
			hasRecord(historyOf(t, bin, cfgA, url, "long"), store.OutcomeSkipped, store.ReasonOverlap)
	})
	if recs := historyOf(t, bin, cfgA, url, "fails"); !strings.Contains(recs[0].Output, "boom") {
		t.Errorf("a failed command's record: output %q, want its tail (boom)", recs[0].Output)
	}
	// long runs 3s and is claimed every second under overlap forbid: the
	// slot at which a run ends is refused while it finishes, so about one
	// second in four nothing runs. Poll past such a gap.
	eventually(t, 5*time.Second, "status: one run of long going on", func() bool {
		return len(jobIn(statusOf(t, bin, cfgA, url), "long").Running) == 1
	})
	if code, out := ctl(t, bin, cfgA, url, "replicas"); code != exitOK || !strings.Contains(out, "ops-a") || !strings.Contains(out, "ops-b") {
		t.Errorf("replicas: exit %d:\n%s", code, out)
	}
	if code, out := ctl(t, bin, cfgA, url, "next", "tick", "--count", "3"); code != exitOK || strings.Count(out, "Z") < 3 {
		t.Errorf("next tick: exit %d:\n%s", code, out)
	}

	// Pause with a note: every replica shows it; the paused slots are on
	// record; resume.
	if code, out := ctl(t, bin, cfgA, url, "pause", "--note", "maintenance window", "tick"); code != exitOK {
		t.Fatalf("pause: exit %d: %s", code, out)
	}
	paused := time.Now()
	for _, addr := range []string{httpA, httpB} {
		var js statusapi.JobStatus
		if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/api/jobs/tick")), &js); err != nil || !js.Paused || js.Note != "maintenance window" {
			t.Errorf("replica at %s: tick %+v (%v), want paused with the note", addr, js, err)
		}
	}
	if j := jobIn(statusOf(t, bin, cfgA, url), "tick"); !j.Paused || j.Note != "maintenance window" {
		t.Errorf("status --json: tick paused %v note %q, want paused with the note", j.Paused, j.Note)
	}
	eventually(t, 10*time.Second, "a paused slot on record", func() bool {
		for _, r := range historyOf(t, bin, cfgA, url, "tick") {
			if r.Outcome == store.OutcomeSkipped && r.Reason == store.ReasonPaused && r.Slot.After(paused) {
				return true
			}
		}
		return false
	})
	if code, _ := ctl(t, bin, cfgA, url, "resume", "tick"); code != exitOK {
		t.Fatalf("resume: exit %d", code)
	}

	// Trigger through Redis, taken by a live replica; --wait prints the
	// record, manual, and the exit code follows its outcome.
	code, out := ctl(t, bin, cfgA, url, "trigger", "report", "--wait", "--json")
	var rec store.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil || code != exitOK || rec.Outcome != store.OutcomeOK || !rec.Manual || !strings.Contains(rec.Output, "manual=1") {
		t.Errorf("trigger report --wait --json: exit %d, record %+v (%v), want ok, manual, output manual=1", code, rec, err)
	}
	if code, _ := ctl(t, bin, cfgA, url, "trigger", "--wait", "fails"); code != exitFailure {
		t.Errorf("trigger fails --wait: exit %d, want 1 (its outcome is error)", code)
	}
	if code, _ := ctl(t, bin, cfgA, url, "trigger", "nope"); code != exitUsage {
		t.Errorf("trigger of an unknown job: exit %d, want 2", code)
	}

	// Drift: a third replica defines tick differently; every replica sees
	// it within one heartbeat (5s), and it clears once that replica stops.
	cfgC := write("c.yaml", opsConfig(prefix, "*/2 * * * * *", ""))
	c := replica("ops-c", cfgC, "off")
	c.waitLog(t, "redcron started", e2eStartTimeout)
	eventually(t, 12*time.Second, "drift of tick on replica A's metrics", func() bool {
		return strings.Contains(httpGet(t, "http://"+httpA+"/metrics"), `redcron_config_drift{job="tick"} 1`)
	})
	if j := jobIn(statusOf(t, bin, cfgA, url), "tick"); !j.Drift {
		t.Errorf("status --json: tick drift false, want true")
	}
	if j := jobIn(statusOf(t, bin, cfgA, url), "fails"); j.Drift {
		t.Errorf("status --json: fails drift true, want false (defined the same everywhere)")
	}
	c.signal(t, syscall.SIGTERM)
	if !c.wait(10 * time.Second) {
		t.Fatal("replica C did not stop")
	}
	eventually(t, 12*time.Second, "drift of tick cleared", func() bool {
		return strings.Contains(httpGet(t, "http://"+httpA+"/metrics"), `redcron_config_drift{job="tick"} 0`)
	})

	// SIGHUP: an invalid file is refused and counted, the old jobs keep
	// running; a valid one with a new job is applied.
	write("a.yaml", "jobs:\n  broken: {schedule: 'every day', command: [true]}\n")
	a.signal(t, syscall.SIGHUP)
	eventually(t, 5*time.Second, "the reload error counted", func() bool {
		return strings.Contains(httpGet(t, "http://"+httpA+"/metrics"), "redcron_config_reload_errors_total 1")
	})
	if a.exited() {
		t.Fatalf("replica A exited on SIGHUP with an invalid file; log:\n%s", tail(a.log))
	}
	write("a.yaml", opsConfig(prefix, "* * * * * *", `  added:
    schedule: "* * * * * *"
    command: ["sh", "-c", "echo added"]
`))
	a.signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, "the added job runs on A", func() bool {
		return hasRecord(historyOf(t, bin, cfgA, url, "added"), store.OutcomeOK, "")
	})
	if !slices.ContainsFunc(readLogs(t, a.log), func(l e2eLog) bool { return l.Message == "SIGHUP: config refused; the old jobs keep running" }) {
		t.Errorf("replica A did not log the refused reload")
	}

	for _, p := range []*e2eProc{a, b} {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range []*e2eProc{a, b} {
		if !p.wait(10*time.Second) || p.cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("%s: did not exit 0 after SIGTERM; log:\n%s", p.name, tail(p.log))
		}
	}
}

// hasRecord says whether recs hold a record with outcome (and reason).
func hasRecord(recs []store.Record, outcome, reason string) bool {
	for _, r := range recs {
		if r.Outcome == outcome && (reason == "" || r.Reason == reason) {
			return true
		}
	}
	return false
}
