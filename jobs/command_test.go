package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logLines decodes a JSON log into its records.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// outputOf returns the logged output lines of one stream.
func outputOf(t *testing.T, log, stream string) []string {
	t.Helper()
	var out []string
	for _, m := range logLines(t, log) {
		if m["message"] == "output" && m["stream"] == stream {
			out = append(out, m["line"].(string))
		}
	}
	return out
}

func commandJob(argv ...string) *Job {
	return &Job{Name: "cmd", Kind: KindCommand, Command: &CommandSpec{Argv: argv, KillGrace: DefaultKillGrace, OutputLimit: DefaultOutputLimit}}
}

func TestCommandEnvDirAndOutput(t *testing.T) {
	dir := t.TempDir()
	j := commandJob("sh", "-c", `echo "job=$REDCRON_JOB slot=$REDCRON_SLOT fence=$REDCRON_FENCE replica=$REDCRON_REPLICA attempt=$REDCRON_ATTEMPT greeting=$GREETING"; pwd; echo oops >&2`)
	j.Command.Env = map[string]string{"GREETING": "hello world"}
	j.Command.Dir = dir
	log, buf := testLogger(t)
	slot := time.Date(2026, 11, 25, 10, 0, 5, 0, time.FixedZone("X", 3600))
	err := j.Run(t.Context(), Run{Job: "backup", Slot: slot, Fence: 42, Attempt: 2, Replica: "r1", Logger: log})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	stdout := outputOf(t, buf.String(), "stdout")
	want := []string{"job=backup slot=2026-11-25T09:00:05Z fence=42 replica=r1 attempt=2 greeting=hello world", dir}
	if strings.Join(stdout, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if got := outputOf(t, buf.String(), "stderr"); len(got) != 1 || got[0] != "oops" {
		t.Errorf("stderr = %q, want [oops]", got)
	}
}

func TestCommandInheritsParentEnv(t *testing.T) {
	t.Setenv("APP_TEST_PARENT", "inherited")
	t.Setenv("REDCRON_REDIS_URL", "redis://:s3cret@db:6379/0")
	t.Setenv("REDCRON_HTTP_TOKEN", "t0k")
	j := commandJob("sh", "-c", `echo "$APP_TEST_PARENT|$REDCRON_REDIS_URL|$REDCRON_HTTP_TOKEN"`)
	log, buf := testLogger(t)
	if err := j.Run(t.Context(), Run{Logger: log}); err != nil {
		t.Fatal(err)
	}
	// The replica's own REDCRON_* settings (a Redis password, the API
	// token) are not the job's business.
	if got := outputOf(t, buf.String(), "stdout"); len(got) != 1 || got[0] != "inherited||" {
		t.Errorf("stdout = %q, want [inherited||]", got)
	}
}

// TestCommandWithholdsConfigVars: a command job does not inherit the
// variables the config's ${VAR}s name (the secrets it names), wherever in
// the file they are used, unless its env: sets them again.
func TestCommandWithholdsConfigVars(t *testing.T) {
	t.Setenv("APP_TEST_PARENT", "inherited")
	t.Setenv("APP_TEST_TOKEN", "tok-from-env")
	t.Setenv("APP_TEST_DSN", "postgres://u:pw@db/app")
	cfg, err := Parse("test.yaml", []byte(`
jobs:
  ping: {schedule: "@every 1m", http: {url: "https://example.com/?t=${APP_TEST_TOKEN}"}}
  show:
    schedule: "@every 1m"
    command: ["sh", "-c", 'echo "$APP_TEST_PARENT|$APP_TEST_TOKEN|$APP_TEST_DSN|$APP_TEST_UNSET"']
    env: {APP_TEST_DSN: "${APP_TEST_DSN}"}
  other: {schedule: "@every 1m", command: ["true"], env: {X: "${APP_TEST_UNSET:-x}"}}
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Vars, []string{"APP_TEST_TOKEN", "APP_TEST_DSN", "APP_TEST_UNSET"}; !slices.Equal(got, want) {
		t.Errorf("cfg.Vars = %q, want %q", got, want)
	}
	log, buf := testLogger(t)
	if err := cfg.Job("show").Run(t.Context(), Run{Logger: log}); err != nil {
		t.Fatal(err)
	}
	// The token is withheld; the DSN too, but the job's env: sets it.
	if got, want := outputOf(t, buf.String(), "stdout"), []string{"inherited||postgres://u:pw@db/app|"}; !slices.Equal(got, want) {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestCommandOutputCap(t *testing.T) {
	j := commandJob("sh", "-c", `i=0; while [ $i -lt 500 ]; do echo "line $i 0123456789012345678901234567890123456789"; echo "err $i" >&2; i=$((i+1)); done`)
	j.Command.OutputLimit = 1000
	log, buf := testLogger(t)
	if err := j.Run(t.Context(), Run{Logger: log}); err != nil {
		t.Fatalf("Run: %v (the command must not block on a full pipe)", err)
	}
	var bytes, truncated int
	for _, m := range logLines(t, buf.String()) {
		switch m["message"] {
		case "output":
			bytes += len(m["line"].(string)) + 1
		case "output truncated":
			truncated++
		}
	}
	if bytes > 1000 || bytes < 500 {
		t.Errorf("logged %d bytes of output, want close to and at most the 1000 limit", bytes)
	}
	if truncated != 1 {
		t.Errorf("got %d \"output truncated\" lines, want 1", truncated)
	}
}

func TestCommandLongLineInPieces(t *testing.T) {
	j := commandJob("sh", "-c", `head -c 40000 /dev/zero | tr '\0' x; echo`)
	log, buf := testLogger(t)
	if err := j.Run(t.Context(), Run{Logger: log}); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, l := range outputOf(t, buf.String(), "stdout") {
		if len(l) > maxLine {
			t.Errorf("a logged piece has %d bytes, want at most %d", len(l), maxLine)
		}
		total += len(l)
	}
	if total != 40000 {
		t.Errorf("logged %d bytes, want 40000", total)
	}
}

func TestCommandExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		script string
		code   int
		signal string
	}{
		{"success", "exit 0", 0, ""},
		{"failure", "exit 3", 3, ""},
		{"killed by a signal", "kill -KILL $$", -1, "killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := commandJob("sh", "-c", tt.script).Run(t.Context(), Run{})
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
				return
			}
			var ee *ExitError
			if !errors.As(err, &ee) || !errors.Is(err, ErrCommandExit) {
				t.Fatalf("Run = %v, want an *ExitError matching ErrCommandExit", err)
			}
			if ee.Code != tt.code || ee.Signal != tt.signal {
				t.Errorf("got code %d signal %q, want %d %q", ee.Code, ee.Signal, tt.code, tt.signal)
			}
		})
	}
}

func TestCommandMissingBinaryIsAnOutcome(t *testing.T) {
	for _, argv0 := range []string{"redcron-no-such-binary", "/nonexistent/redcron-no-such-binary"} {
		t.Run(argv0, func(t *testing.T) {
			err := commandJob(argv0).Run(t.Context(), Run{})
			if !errors.Is(err, ErrCommandStart) {
				t.Fatalf("Run = %v, want ErrCommandStart", err)
			}
			if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Run = %v, want it to wrap the not-found error", err)
			}
		})
	}
	j := commandJob("true")
	j.Command.Dir = "/nonexistent-dir-redcron"
	if err := j.Run(t.Context(), Run{}); !errors.Is(err, ErrCommandStart) {
		t.Errorf("Run with a missing dir = %v, want ErrCommandStart", err)
	}
}

// processGone reports whether pid no longer runs (absent, or a zombie
// waiting for a reaper that this container's init may not be).
func processGone(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// waitGone polls processGone until it holds or d has passed.
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitPidFile waits for the child to write its grandchild's pid.
func waitPidFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the child never wrote its grandchild's pid")
	return 0
}

func TestCommandCancelKillsProcessGroup(t *testing.T) {
	errLease := errors.New("lease lost (test)")
	tests := []struct {
		name    string
		script  string
		grace   time.Duration
		minTook time.Duration
	}{
		// SIGTERM is enough: the shell and its sleep both die.
		{"sigterm", `sleep 60 & echo $! > "$PIDFILE"; wait`, 5 * time.Second, 0},
		// Both ignore SIGTERM (ignored signals survive exec): SIGKILL after the grace.
		{"sigkill after grace", `trap "" TERM; sleep 60 & echo $! > "$PIDFILE"; wait; wait`, 300 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			j := commandJob("sh", "-c", tt.script)
			j.Command.Env = map[string]string{"PIDFILE": pidFile}
			j.Command.KillGrace = tt.grace
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			done := make(chan error, 1)
			go func() { done <- j.Run(ctx, Run{}) }()
			grandchild := waitPidFile(t, pidFile)
			t.Cleanup(func() { _ = syscall.Kill(grandchild, syscall.SIGKILL) })
			start := time.Now()
			cancel(errLease)
			var err error
			select {
			case err = <-done:
			case <-time.After(tt.grace + 10*time.Second):
				t.Fatal("Run did not return after cancellation")
			}
			took := time.Since(start)
			if !errors.Is(err, errLease) || !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want the cause and context.Canceled", err)
			}
			if !errors.Is(err, ErrCommandExit) {
				t.Errorf("Run = %v, want it to carry the exit outcome too", err)
			}
			if took < tt.minTook {
				t.Errorf("returned after %s, want at least the %s grace", took, tt.minTook)
			}
			// The group's SIGKILL is sent before Run returns; the kernel
			// may take a moment to end a process it was delivered to.
			if !waitGone(grandchild, 2*time.Second) {
				t.Errorf("grandchild %d still runs 2s after Run returned", grandchild)
			}
		})
	}
}

func TestCommandBackgroundGrandchildDoesNotHangRun(t *testing.T) {
	old := drainTimeout
	drainTimeout = 200 * time.Millisecond
	t.Cleanup(func() { drainTimeout = old })
	pidFile := filepath.Join(t.TempDir(), "pid")
	j := commandJob("sh", "-c", `sleep 30 & echo $! > "$PIDFILE"; echo started`)
	j.Command.Env = map[string]string{"PIDFILE": pidFile}
	log, buf := testLogger(t)
	start := time.Now()
	if err := j.Run(t.Context(), Run{Logger: log}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	grandchild := waitPidFile(t, pidFile)
	_ = syscall.Kill(grandchild, syscall.SIGKILL)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %s with a grandchild holding stdout, want about the drain timeout", took)
	}
	if got := outputOf(t, buf.String(), "stdout"); len(got) != 1 || got[0] != "started" {
		t.Errorf("stdout = %q, want [started]", got)
	}
}

func TestRunNotStartedWhenContextDone(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	pidFile := filepath.Join(t.TempDir(), "ran")
	j := commandJob("touch", pidFile)
	if err := j.Run(ctx, Run{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Error("the command ran although its context was done")
	}
}
