package main

// Multi-process tests: the real redcron binary, run as separate replicas
// over one real redis-server, with faults injected by signals (SIGKILL,
// SIGSTOP/SIGCONT, SIGTERM). Command jobs append one line per run to a
// ledger file; the ledger, the replicas' JSON logs and the slot marks left
// in Redis are then checked against promises 1, 2, 5 and 6 of DESIGN.md.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// Margins of the real-time tests. The machine is shared with other test
// runs, so every wait is generous; none of them lengthens a passing run
// except by the time the event really takes.
const (
	e2eStartTimeout = 20 * time.Second // a replica logs "redcron started"
	e2eExitMargin   = 5 * time.Second  // beyond the shutdown grace (and kill grace)
	e2eKillWait     = 10 * time.Second // a SIGKILLed process is reaped
	e2ePoll         = 25 * time.Millisecond
	// e2eSignalOffset: faults are injected this long after a whole second,
	// when every replica is claiming that second's slots, so the faulted
	// replica is likely to hold claims (and leases) when it is hit.
	e2eSignalOffset = 2 * time.Millisecond
)

// buildRedcron builds the binary under test (a normal build, not -race)
// into the test's temporary directory. main_test.go owns this package's
// TestMain, so each test builds its own copy: thanks to Go's build cache the
// second build is a link only, and t.TempDir removes the binary.
func buildRedcron(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts $GOROOT/bin first in PATH
	if err != nil {
		t.Fatalf("go tool not found on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "redcron")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// e2eEnv is the test's environment without REDCRON_* variables, so that the
// replicas see only the flags each test gives them.
func e2eEnv() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "REDCRON_") })
}

// e2eProc is one redcron process. Its stdout and stderr go to a log file;
// t.Cleanup SIGKILLs and reaps it if the test has not ended it already, so
// no replica outlives the test.
type e2eProc struct {
	name string // --replica
	log  string // path of its stdout+stderr
	cmd  *exec.Cmd
	done chan struct{} // closed once reaped
}

func startRedcron(t *testing.T, bin, name, logPath string, args ...string) *e2eProc {
	t.Helper()
	return startRedcronEnv(t, bin, name, logPath, nil, args...)
}

// startRedcronEnv is startRedcron with env added to e2eEnv.
func startRedcronEnv(t *testing.T, bin, name, logPath string, env []string, args ...string) *e2eProc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = append(e2eEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f // *os.File: no copying goroutines
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &e2eProc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.exited() {
			return
		}
		_ = cmd.Process.Kill() // works on a SIGSTOPped process too
		select {
		case <-p.done:
		case <-time.After(e2eKillWait):
			t.Errorf("%s (pid %d) still alive %v after SIGKILL", name, cmd.Process.Pid, e2eKillWait)
		}
	})
	return p
}

// startReplica runs `redcron run` as replica name.
func startReplica(t *testing.T, bin, config, redisURL, name, logPath string) *e2eProc {
	t.Helper()
	return startRedcron(t, bin, name, logPath,
		"run", "--config", config, "--redis", redisURL, "--replica", name, "--http", "off", "--log-level", "info")
}

func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *e2eProc) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
	at := time.Now()
	t.Logf("%s: %v to %s (pid %d)", at.Format("15:04:05.000"), sig, p.name, p.cmd.Process.Pid)
	return at
}

// wait waits until the process has exited, for at most d; it reports
// whether it has.
func (p *e2eProc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// e2eLog is the part of a zerolog JSON line these tests read.
type e2eLog struct {
	Level      string `json:"level"`
	Message    string `json:"message"`
	Job        string `json:"job"`
	Slot       string `json:"slot"`
	Replica    string `json:"replica"`
	Fence      int64  `json:"fence"`
	Attempt    int    `json:"attempt"`
	Outcome    string `json:"outcome"`
	Reason     string `json:"reason"`
	Error      string `json:"error"`
	DurationMS int64  `json:"duration_ms"`
}

// readLogs returns the JSON lines of a log file; other lines are skipped.
func readLogs(t *testing.T, path string) []e2eLog {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []e2eLog
	for line := range bytes.Lines(data) {
		var l e2eLog
		if json.Unmarshal(line, &l) == nil && l.Message != "" {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits until the process's log holds a line with message msg.
func (p *e2eProc) waitLog(t *testing.T, msg string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, l := range readLogs(t, p.log) {
			if l.Message == msg {
				return
			}
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q; log:\n%s", p.name, p.cmd.ProcessState, msg, tail(p.log))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v; log:\n%s", p.name, msg, d, tail(p.log))
		}
		time.Sleep(e2ePoll)
	}
}

// tail returns the last lines of a file, for failure messages.
func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-30, 0):], "\n")
}

// survivors lists the processes (pid and command line) whose command line
// mentions s, read from /proc.
func survivors(s string) []string {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		if pid == strconv.Itoa(os.Getpid()) {
			continue
		}
		out = append(out, pid+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return out
}

// nextSlotInstant sleeps until e2eSignalOffset past the first whole second
// at or after at, and returns the time it woke.
func nextSlotInstant(at time.Time) time.Time {
	target := at.Truncate(time.Second)
	if target.Before(at) {
		target = target.Add(time.Second)
	}
	time.Sleep(time.Until(target.Add(e2eSignalOffset)))
	return time.Now()
}

// ledgerEntry is one line of the ledger: one command run that started.
type ledgerEntry struct {
	job     string
	slot    time.Time
	fence   int64
	replica string
	line    int
}

type jobSlot struct {
	job  string
	slot int64 // unix seconds
}

func readLedger(t *testing.T, path string) []ledgerEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("ledger: %v", err)
	}
	defer f.Close()
	var out []ledgerEntry
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Errorf("ledger line %d %q: want 4 fields (job slot fence replica)", n, sc.Text())
			continue
		}
		slot, err1 := time.Parse(time.RFC3339, fs[1])
		fence, err2 := strconv.ParseInt(fs[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			t.Errorf("ledger line %d %q: %v", n, sc.Text(), err)
			continue
		}
		out = append(out, ledgerEntry{job: fs[0], slot: slot, fence: fence, replica: fs[3], line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// markKey is the slot mark of (job, slot) under prefix.
func markKey(prefix, job string, slot time.Time) string {
	return store.JobKeys(prefix, job).Mark(slot)
}

// checkBounded asserts promise 7 on everything the replicas wrote: every
// key has a TTL, except the fixed bound of one meta hash (fence, high-water,
// first sight), one pause key and one ring of decided slots (at most
// locker.RingSpan/8 bytes) per job.
func checkBounded(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	var cursor uint64
	n := 0
	for {
		keys, next, err := c.Scan(ctx, cursor, "*", 500).Result()
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		for _, k := range keys {
			n++
			if strings.HasSuffix(k, ":meta") || strings.HasSuffix(k, ":paused") {
				continue
			}
			if strings.HasSuffix(k, ":ring") {
				if n, max := c.StrLen(ctx, k).Val(), int64(locker.RingSpan/time.Second/8); n == 0 || n > max {
					t.Errorf("ring %q: got %d bytes, want 1 to %d", k, n, max)
				}
				continue
			}
			if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 {
				t.Errorf("key %q has no TTL (PTTL %v): Redis memory would grow with uptime", k, ttl)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	t.Logf("bounded state: %d keys, each with a TTL but the per-job meta hashes and rings", n)
}

// readMarks reads the marks of the given slots in one pipeline; a missing
// mark reads as ok false.
func readMarks(t *testing.T, c *redis.Client, prefix string, keys []jobSlot) map[jobSlot]e2eMark {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	pipe := c.Pipeline()
	for i, k := range keys {
		cmds[i] = pipe.HGetAll(ctx, markKey(prefix, k.job, time.Unix(k.slot, 0)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("reading slot marks: %v", err)
	}
	out := make(map[jobSlot]e2eMark, len(keys))
	for i, k := range keys {
		m, ok, err := store.ParseMark(cmds[i].Val())
		out[k] = e2eMark{Mark: m, ok: ok, err: err}
	}
	return out
}

// e2eMark is a slot's mark as read: ok false when absent, err when it
// does not parse.
type e2eMark struct {
	store.Mark
	ok  bool
	err error
}

// faultWindow is a span of slots a faulted replica may have claimed and
// then failed to run: slots in [from, to] (inclusive, unix seconds).
type faultWindow struct {
	replica  string
	from, to int64
	what     string
}

func (w faultWindow) holds(slot int64) bool { return slot >= w.from && slot <= w.to }

// TestMultiProcess runs three replicas of the built binary over one
// redis-server, SIGKILLs one and restarts it, SIGSTOPs another past its
// lease and resumes it, then SIGTERMs all three; and checks the ledger the
// command jobs wrote:
//   - zero duplicates: no (job, slot) ran twice (promise 1);
//   - per job, fences strictly increase with slots (promise 4);
//   - every slot of the steady window ran, or its mark in Redis shows it was
//     claimed by the faulted replica, around its fault (promises 2 and 5);
//   - each replica exits 0 within the shutdown grace after SIGTERM (promise 6).
func TestMultiProcess(t *testing.T) {
	const (
		prefix    = "e2e"
		nJobs     = 5
		lockTTL   = 2 * time.Second
		grace     = 5 * time.Second
		replicaA  = "replica-a" // SIGKILLed, then restarted under the same name
		replicaB  = "replica-b" // SIGSTOPped past its lease, then SIGCONTinued
		replicaC  = "replica-c" // never faulted
		killAfter = 4 * time.Second
		downFor   = 2 * time.Second
		stopAfter = 11 * time.Second
		stopFor   = lockTTL + 2*time.Second
		runAfter  = 5 * time.Second // after SIGCONT, before SIGTERM
		steady    = 2 * time.Second // trimmed from both ends of the checked window
	)
	bin := buildRedcron(t)
	srv := redistest.Start(t, redistest.Options{AOF: true})
	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	if err := os.WriteFile(ledger, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	// overlap: allow, not forbid. With forbid, every slot of a job contends
	// for the job's single run key: a SIGSTOPped (or SIGKILLed) holder keeps
	// it until its lease expires, and meanwhile the healthy replicas record
	// "skipped:overlap" for the job's next slots. Those misses would be
	// caused by the fault but not claimed by the faulted replica; their
	// marks name the healthy replica that skipped. With allow, each slot
	// has its own lease key, so a fault can only lose the slots the faulted
	// replica itself claimed, and each such slot's mark shows that claim:
	// exactly the property "misses only for slots that the faulted replica
	// had claimed" can then be checked slot by slot.
	//
	// max_clock_skew only sizes the slot marks (2 x skew + catchup window +
	// jitter + 5s). 15s keeps every mark of this ~22 s run readable after
	// the replicas stop, so each miss can be explained from Redis.
	script := fmt.Sprintf(`echo "$REDCRON_JOB $REDCRON_SLOT $REDCRON_FENCE $REDCRON_REPLICA" >> '%s'`, ledger)
	var argv bytes.Buffer
	enc := json.NewEncoder(&argv) // JSON is YAML; no HTML escaping of >>
	enc.SetEscapeHTML(false)
	if err := enc.Encode([]string{"sh", "-c", script}); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `redis:
  prefix: %s
  max_clock_skew: 15s
shutdown_grace: %v
defaults:
  lock_ttl: %v
  overlap: allow
  catchup_window: 3s
jobs:
`, prefix, grace, lockTTL)
	jobNames := make([]string, nJobs)
	for i := range jobNames {
		jobNames[i] = fmt.Sprintf("job%d", i+1)
		fmt.Fprintf(&cfg, "  %s:\n    schedule: \"* * * * * *\"\n    command: %s", jobNames[i], argv.String())
	}
	config := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(config, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	replica := func(name, logName string) *e2eProc {
		return startReplica(t, bin, config, srv.URL(), name, filepath.Join(dir, logName))
	}
	a := replica(replicaA, "a1.log")
	b := replica(replicaB, "b.log")
	c := replica(replicaC, "c.log")
	for _, p := range []*e2eProc{a, b, c} {
		p.waitLog(t, "redcron started", e2eStartTimeout)
	}
	t0 := time.Now()
	t.Logf("%s: all 3 replicas started", t0.Format("15:04:05.000"))

	// SIGKILL A while it claims, restart it under the same name.
	killAt := nextSlotInstant(t0.Add(killAfter))
	a.signal(t, syscall.SIGKILL)
	if !a.wait(e2eKillWait) {
		t.Fatalf("%s not reaped %v after SIGKILL", a.name, e2eKillWait)
	}
	time.Sleep(time.Until(killAt.Add(downFor)))
	a2 := replica(replicaA, "a2.log")
	a2.waitLog(t, "redcron started", e2eStartTimeout)
	t.Logf("%s: %s restarted", time.Now().Format("15:04:05.000"), replicaA)

	// SIGSTOP B while it claims, past its lease; then SIGCONT.
	stopAt := nextSlotInstant(t0.Add(stopAfter))
	b.signal(t, syscall.SIGSTOP)
	time.Sleep(time.Until(stopAt.Add(stopFor)))
	contAt := b.signal(t, syscall.SIGCONT)

	time.Sleep(time.Until(contAt.Add(runAfter)))
	live := []*e2eProc{a2, b, c}
	var termAt time.Time
	for _, p := range live {
		at := p.signal(t, syscall.SIGTERM)
		if termAt.IsZero() {
			termAt = at
		}
	}
	limit := grace + e2eExitMargin
	for _, p := range live {
		if !p.wait(time.Until(termAt.Add(limit))) {
			t.Errorf("%s still running %v after SIGTERM, want exit within shutdown_grace %v + %v; log:\n%s",
				p.name, time.Since(termAt).Round(time.Millisecond), grace, e2eExitMargin, tail(p.log))
			continue
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited with %v after SIGTERM, want exit 0; log:\n%s", p.name, p.cmd.ProcessState, tail(p.log))
		}
	}
	stoppedAt := time.Now()
	t.Logf("%s: replicas exited %v after SIGTERM", stoppedAt.Format("15:04:05.000"), stoppedAt.Sub(termAt).Round(time.Millisecond))
	for _, p := range []*e2eProc{a, a2, b, c} {
		if !p.exited() {
			t.Fatalf("%s (pid %d) still running at the end of the test", p.name, p.cmd.Process.Pid)
		}
	}
	// Nor any job command (the SIGKILLed replica's children are orphans,
	// but their echo ends at once): every process naming the test's
	// directory (config, ledger) is gone.
	for deadline := time.Now().Add(e2eExitMargin); ; time.Sleep(e2ePoll) {
		left := survivors(dir)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes outlive the replicas:\n%s", strings.Join(left, "\n"))
			break
		}
	}

	// The slots every job must have run, or lost to a fault.
	from := t0.Add(steady).Truncate(time.Second).Add(time.Second).Unix()
	to := termAt.Add(-steady).Truncate(time.Second).Unix()
	if to-from < 10 {
		t.Fatalf("steady window [%d, %d] too short", from, to)
	}
	// A slot the killed A may have claimed: one whose claim began before the
	// kill, i.e. at most the slot of killAt (claims start at their slot; a
	// slot's claim attempts end before the next slot begins). The lower
	// bound allows for a run started a lease earlier that was still going.
	faults := []faultWindow{
		{replicaA, killAt.Add(-lockTTL).Unix(), killAt.Unix(), "SIGKILL"},
		// B may have claimed the slot it was stopped in (or one a lease
		// earlier, still running), and nothing while stopped.
		{replicaB, stopAt.Add(-lockTTL).Unix(), contAt.Unix(), "SIGSTOP"},
	}

	entries := readLedger(t, ledger)
	seen := map[jobSlot]ledgerEntry{}
	perReplica := map[string]int{}
	dups := 0
	for _, e := range entries {
		k := jobSlot{e.job, e.slot.Unix()}
		if prev, ok := seen[k]; ok {
			dups++
			t.Errorf("duplicate run of (%s, %s): ledger lines %d (fence %d, %s) and %d (fence %d, %s)",
				e.job, e.slot.Format(time.RFC3339), prev.line, prev.fence, prev.replica, e.line, e.fence, e.replica)
			continue
		}
		seen[k] = e
		perReplica[e.replica]++
		if !slices.Contains(jobNames, e.job) || !slices.Contains([]string{replicaA, replicaB, replicaC}, e.replica) {
			t.Errorf("ledger line %d: unknown job %q or replica %q", e.line, e.job, e.replica)
		}
	}

	// Fences strictly increase with slots, per job, across all three faults.
	// Every replica sends its claim of a slot at the slot and gives it up
	// before the next slot (the claim attempt's deadline), so Redis hands
	// out fences in slot order. Across the SIGSTOP this still holds: a
	// claim B sent before the stop was served then, in order; one it had
	// not sent yet is refused after SIGCONT (slot already claimed by a
	// healthy replica, or past its deadline). Only a claim served late,
	// after the next slot's, could break the order; none may be.
	regressions := 0
	for _, job := range jobNames {
		var es []ledgerEntry
		for _, e := range entries {
			if e.job == job {
				es = append(es, e)
			}
		}
		sort.SliceStable(es, func(i, j int) bool { return es[i].slot.Before(es[j].slot) })
		for i := 1; i < len(es); i++ {
			if es[i].slot.Equal(es[i-1].slot) {
				continue // reported as a duplicate
			}
			if es[i].fence <= es[i-1].fence {
				regressions++
				t.Errorf("%s: fence regression: slot %s fence %d (%s) after slot %s fence %d (%s)", job,
					es[i].slot.Format(time.TimeOnly), es[i].fence, es[i].replica,
					es[i-1].slot.Format(time.TimeOnly), es[i-1].fence, es[i-1].replica)
			}
		}
	}

	// Every slot of the window: its mark, read before any can expire.
	var keys []jobSlot
	for _, job := range jobNames {
		for s := from; s <= to; s++ {
			keys = append(keys, jobSlot{job, s})
		}
	}
	marks := readMarks(t, srv.Client(t), prefix, keys)
	checkBounded(t, srv.Client(t))
	t.Logf("marks read %v after the first checked slot", time.Since(time.Unix(from, 0)).Round(time.Millisecond))

	// What the replicas logged: runs, skips, and claims that failed.
	runLogs := map[string]map[string]int{} // replica -> outcome -> runs
	skips := map[string]map[string]int{}   // replica -> reason -> skipped slots
	claimFailed := map[string]int{}        // replica -> claims that failed (I/O) at least once
	for _, p := range []*e2eProc{a, a2, b, c} {
		for _, l := range readLogs(t, p.log) {
			slot, err := time.Parse(time.RFC3339, l.Slot)
			if l.Slot != "" && err != nil {
				t.Errorf("%s: %q line with slot %q: %v", p.name, l.Message, l.Slot, err)
				continue
			}
			k := jobSlot{l.Job, slot.Unix()}
			switch l.Message {
			case "run":
				if runLogs[p.name] == nil {
					runLogs[p.name] = map[string]int{}
				}
				runLogs[p.name][l.Outcome]++
				// A run logged ok ran its command: the ledger has it.
				e, ok := seen[k]
				if l.Outcome == store.OutcomeOK && (!ok || e.fence != l.Fence || e.replica != p.name) {
					t.Errorf("%s logged run (%s, %s, fence %d) ok, but the ledger has %+v", p.name, l.Job, l.Slot, l.Fence, e)
				}
			case "slot skipped":
				if skips[p.name] == nil {
					skips[p.name] = map[string]int{}
				}
				skips[p.name][l.Reason]++
			case "claim failed; retrying the same claim, nothing runs without it":
				claimFailed[p.name]++
			}
		}
	}

	explained := map[string]int{}
	ran := 0
	for _, k := range keys {
		mk := marks[k]
		slotStr := time.Unix(k.slot, 0).UTC().Format(time.RFC3339)
		if e, ok := seen[k]; ok {
			ran++
			// The mark must be this run's: same fence, and same replica
			// once recorded (a run whose replica was killed keeps its
			// running claim).
			switch {
			case !mk.ok:
				t.Errorf("(%s, %s) ran (fence %d, %s) but has no slot mark", k.job, slotStr, e.fence, e.replica)
			case mk.err != nil:
				t.Errorf("(%s, %s): %v", k.job, slotStr, mk.err)
			case mk.Fence != e.fence || mk.Claim.Replica != e.replica || (mk.Ended && mk.Record.Replica != e.replica):
				t.Errorf("(%s, %s) ran with fence %d on %s but its mark is %+v", k.job, slotStr, e.fence, e.replica, mk.Mark)
			case !mk.Ended && !(e.replica == replicaA && faults[0].holds(k.slot)):
				t.Errorf("(%s, %s) ran on %s but its mark was never finished: %+v", k.job, slotStr, e.replica, mk.Mark)
			}
			continue
		}
		// A miss: it must be a claim by a faulted replica, around its fault.
		why := ""
		claimant := mk.Claim.Replica
		w := slices.IndexFunc(faults, func(f faultWindow) bool { return f.replica == claimant && f.holds(k.slot) })
		switch {
		case !mk.ok:
			why = "no replica claimed or recorded it (mark absent)"
		case mk.err != nil:
			why = mk.err.Error()
		case w < 0:
			why = fmt.Sprintf("not claimed by a faulted replica around its fault: %+v", mk.Mark)
		case !mk.Ended:
			// Every replica that exits (SIGTERM) or resumes (SIGCONT)
			// finishes or withdraws its claims; only the SIGKILLed
			// process cannot.
			if claimant == replicaA {
				explained["claimed by "+replicaA+", SIGKILLed before it ran (running mark never finished)"]++
				continue
			}
			why = fmt.Sprintf("running claim (fence %d) of %s never finished", mk.Fence, claimant)
		case mk.Record.Outcome == store.OutcomeOK:
			why = fmt.Sprintf("recorded ok by %s (fence %d) but never wrote the ledger", mk.Record.Replica, mk.Fence)
		default:
			// B's claim ran in Redis (the healthy replicas saw it and left
			// the slot), but B was stopped before it could run it: on
			// SIGCONT the slot's window was over and B gave the claim up,
			// recorded as skipped (aborted or late), never claimable again.
			explained[fmt.Sprintf("claimed by %s, %s, recorded %s %s", claimant, faults[w].what, mk.Record.Outcome, mk.Record.Reason)]++
			continue
		}
		t.Errorf("slot (%s, %s) missed: %s", k.job, slotStr, why)
	}

	missed := 0
	for _, n := range explained {
		missed += n
	}
	t.Logf("ledger: %d runs, %d duplicates, %d fence regressions; per replica %v", len(entries), dups, regressions, perReplica)
	t.Logf("steady window %s..%s: %d jobs x %d slots = %d, %d ran, %d missed and explained: %v",
		time.Unix(from, 0).UTC().Format(time.TimeOnly), time.Unix(to, 0).UTC().Format(time.TimeOnly),
		nJobs, to-from+1, len(keys), ran, missed, explained)
	t.Logf("run lines logged (replica -> outcome -> n): %v; slots skipped (replica -> reason -> n): %v", runLogs, skips)
}

// TestSIGTERMGrace: SIGTERM while a command job runs. The replica stops
// claiming, waits the shutdown grace for the job, then cancels it (its
// process group is killed), records the outcome "shutdown" in the slot's
// mark and exits 0 (promise 6).
func TestSIGTERMGrace(t *testing.T) {
	const (
		prefix    = "e2e"
		grace     = 2 * time.Second
		killGrace = time.Second
		name      = "replica-grace"
	)
	bin := buildRedcron(t)
	srv := redistest.Start(t, redistest.Options{AOF: true})
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	script := fmt.Sprintf(`echo $$ >> '%s'; exec sleep 30`, pids)
	var argv bytes.Buffer
	enc := json.NewEncoder(&argv)
	enc.SetEscapeHTML(false)
	if err := enc.Encode([]string{"sh", "-c", script}); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "jobs.yaml")
	cfg := fmt.Sprintf(`redis: {prefix: %s}
shutdown_grace: %v
jobs:
  sleeper:
    schedule: "* * * * * *"
    overlap: forbid
    kill_grace: %v
    command: %s`, prefix, grace, killGrace, argv.String())
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startReplica(t, bin, config, srv.URL(), name, filepath.Join(dir, "replica.log"))
	p.waitLog(t, "redcron started", e2eStartTimeout)

	// Wait until the job runs: its shell wrote its pid (then exec'd sleep).
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		data, _ := os.ReadFile(pids)
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatalf("pids file %q: %v", data, err)
			}
			pid = n
			break
		}
		if time.Now().After(deadline) || p.exited() {
			t.Fatalf("the sleeper job did not start within 10s; log:\n%s", tail(p.log))
		}
		time.Sleep(e2ePoll)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // if the replica failed to
	time.Sleep(200 * time.Millisecond)                           // let it be properly under way

	termAt := p.signal(t, syscall.SIGTERM)
	limit := grace + killGrace + e2eExitMargin
	if !p.wait(limit) {
		t.Fatalf("still running %v after SIGTERM, want exit within grace %v + kill grace %v + %v; log:\n%s",
			limit, grace, killGrace, e2eExitMargin, tail(p.log))
	}
	took := time.Since(termAt)
	t.Logf("exited %v after SIGTERM (%v)", took.Round(time.Millisecond), p.cmd.ProcessState)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %v after SIGTERM, want 0; log:\n%s", p.cmd.ProcessState, tail(p.log))
	}
	// The job ran for 30s: the replica must have waited the whole grace.
	if took < grace-100*time.Millisecond {
		t.Errorf("exited %v after SIGTERM, before the %v grace was over: the running job was not given its grace", took, grace)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the job's process %d survived the replica (kill -0: %v)", pid, err)
	}
	if left := survivors(dir); len(left) > 0 {
		t.Errorf("processes outlive the replica:\n%s", strings.Join(left, "\n"))
	}

	// The run is logged and recorded with outcome "shutdown".
	var run *e2eLog
	stopped := false
	runs := 0
	for _, l := range readLogs(t, p.log) {
		switch l.Message {
		case "run":
			runs++
			run = &l
		case "redcron stopped":
			stopped = true
		}
	}
	if runs != 1 || run == nil {
		t.Fatalf("got %d run lines, want 1; log:\n%s", runs, tail(p.log))
	}
	if run.Outcome != store.OutcomeShutdown || run.Replica != name || run.Job != "sleeper" {
		t.Errorf("run line: outcome %q, replica %q, job %q; want %q, %q, sleeper", run.Outcome, run.Replica, run.Job, store.OutcomeShutdown, name)
	}
	if !stopped {
		t.Errorf("no \"redcron stopped\" line; log:\n%s", tail(p.log))
	}
	slot, err := time.Parse(time.RFC3339, run.Slot)
	if err != nil {
		t.Fatalf("run line slot %q: %v", run.Slot, err)
	}
	k := jobSlot{"sleeper", slot.Unix()}
	mk := readMarks(t, srv.Client(t), prefix, []jobSlot{k})[k]
	rec := mk.Record
	switch {
	case !mk.ok || mk.err != nil:
		t.Errorf("slot mark: exists %v, %v", mk.ok, mk.err)
	case !mk.Ended:
		t.Errorf("slot mark %+v: still a running claim, want the recorded outcome", mk.Mark)
	case rec.Outcome != store.OutcomeShutdown || rec.Fence != run.Fence || rec.Replica != name:
		t.Errorf("slot mark records outcome %q, fence %d, replica %q; want %q, %d, %q",
			rec.Outcome, rec.Fence, rec.Replica, store.OutcomeShutdown, run.Fence, name)
	default:
		t.Logf("slot %s recorded: outcome %s, fence %d, %d ms, error %q", run.Slot, rec.Outcome, rec.Fence, rec.DurationMS, rec.Error)
	}
}
