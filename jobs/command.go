package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Tunables of command jobs, variables so tests can shorten them.
var (
	// drainTimeout bounds how long output is read after the command exits,
	// when a background grandchild still holds stdout or stderr open.
	drainTimeout = 2 * time.Second
	// groupPoll is how often the process group is checked while waiting for
	// it to exit after SIGTERM.
	groupPoll = 20 * time.Millisecond
)

const maxLine = 16 << 10 // longer lines are logged in pieces

// execCommand runs one attempt of a command job. The command runs in its own
// process group, with the parent's environment (less its REDCRON_* settings
// and the variables in c.Withhold: see commandEnv) plus REDCRON_JOB, REDCRON_SLOT
// (RFC 3339, UTC), REDCRON_FENCE, REDCRON_REPLICA, REDCRON_ATTEMPT,
// REDCRON_MANUAL=1 for a manual run, and the job's env. Each line of stdout and stderr is logged (Info, fields stream and
// line) until OutputLimit bytes, then one "output truncated" warning; the rest
// is read and dropped. When ctx ends: SIGTERM to the group, SIGKILL to the
// group after KillGrace (or as soon as the main process has exited and the
// grace is spent).
func execCommand(ctx context.Context, c *CommandSpec, r Run) error {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return fmt.Errorf("%w: empty command", ErrCommandStart)
	}
	log := r.Logger
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	env := commandEnv(os.Environ(), c.Withhold)
	env = append(env,
		"REDCRON_JOB="+r.Job,
		"REDCRON_SLOT="+r.Slot.UTC().Format(time.RFC3339),
		"REDCRON_FENCE="+strconv.FormatInt(r.Fence, 10),
		"REDCRON_REPLICA="+r.Replica,
		"REDCRON_ATTEMPT="+strconv.Itoa(r.Attempt),
	)
	if r.Manual {
		env = append(env, "REDCRON_MANUAL=1")
	}
	for _, k := range sortedKeys(c.Env) {
		env = append(env, k+"="+c.Env[k])
	}
	cmd.Env = env

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCommandStart, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("%w: %w", ErrCommandStart, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("%w: %q: %w", ErrCommandStart, c.Argv[0], err)
	}
	pgid := cmd.Process.Pid
	log.Debug().Int("pid", pgid).Msg("command started")

	limit := c.OutputLimit
	if limit <= 0 {
		limit = DefaultOutputLimit
	}
	out := &outputLog{log: log, limit: int64(limit), tail: r.Output}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); out.copy("stdout", outR) }()
	go func() { defer readers.Done(); out.copy("stderr", errR) }()

	waitDone := make(chan error, 1)
	go func() { waitDone <- cmd.Wait() }()

	var waitErr error
	cancelled := false
	select {
	case waitErr = <-waitDone:
	case <-ctx.Done():
		cancelled = true
		grace := c.KillGrace
		if grace <= 0 {
			grace = DefaultKillGrace
		}
		waitErr = stopGroup(log, pgid, grace, waitDone)
	}

	// Read what is left; a background grandchild may hold the pipes open.
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	timer := time.NewTimer(drainTimeout)
	select {
	case <-drained:
	case <-timer.C:
		log.Warn().Msg("command output still open after exit; closing it")
	}
	timer.Stop()
	outR.Close() // unblocks the readers if they are still reading
	errR.Close()
	<-drained

	outcome := exitOutcome(waitErr)
	if cancelled {
		return errors.Join(ctxErr(ctx), outcome)
	}
	return outcome
}

// commandEnv is what a command inherits of the replica's environment
// parent: all of it but the replica's own REDCRON_* settings (the Redis
// URL and password, REDCRON_HTTP_TOKEN) and the variables named in
// withhold (the ${VAR}s of the config: the secrets it names). The job's
// env: and the REDCRON_* variables of the run are added after.
func commandEnv(parent, withhold []string) []string {
	return slices.DeleteFunc(slices.Clone(parent), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "REDCRON_") || slices.Contains(withhold, name)
	})
}

// stopGroup sends SIGTERM to the process group, waits up to grace for the
// main process to exit and the group to empty, then sends SIGKILL to the
// group. It returns the main process's Wait error.
func stopGroup(log zerolog.Logger, pgid int, grace time.Duration, waitDone <-chan error) error {
	log.Info().Int("pid", pgid).Int64("grace_ms", grace.Milliseconds()).Msg("cancelling command: SIGTERM to its process group")
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	poll := time.NewTicker(groupPoll)
	defer poll.Stop()
	var waitErr error
	exited := false
	for {
		select {
		case waitErr = <-waitDone:
			exited = true
			if groupGone(pgid) {
				return waitErr
			}
		case <-poll.C:
			if exited && groupGone(pgid) {
				return waitErr
			}
		case <-deadline.C:
			log.Warn().Int("pid", pgid).Msg("command outlived its kill grace: SIGKILL to its process group")
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if !exited {
				waitErr = <-waitDone
			}
			return waitErr
		}
	}
}

// groupGone reports whether no process is left in the group.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// exitOutcome turns Wait's error into the run's outcome.
func exitOutcome(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: -1, Signal: ws.Signal().String()}
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	return fmt.Errorf("%w: %w", ErrCommandExit, err)
}

// outputLog logs a command's output line by line, up to a shared byte limit.
type outputLog struct {
	log       zerolog.Logger
	tail      *Tail // the record's tail of the output; nil: none
	limit     int64
	used      atomic.Int64
	truncated atomic.Bool
}

func (o *outputLog) copy(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			_, _ = o.tail.Write(line) // the record keeps the tail of both streams
			o.line(stream, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return // EOF, or the pipe was closed after the drain timeout
		}
	}
}

func (o *outputLog) line(stream string, b []byte) {
	if o.used.Add(int64(len(b))) > o.limit {
		if o.truncated.CompareAndSwap(false, true) {
			o.log.Warn().Int64("limit", o.limit).Msg("output truncated")
		}
		return
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	o.log.Info().Str("stream", stream).Bytes("line", b).Msg("output")
}
