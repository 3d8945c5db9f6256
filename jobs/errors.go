package jobs

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redcron/redcron/scheduler/schedule"
)

// Sentinel errors. Config problems are reported through *ConfigError, whose
// Unwrap lists ErrInvalidConfig and the sentinels of the individual problems;
// run outcomes wrap the run sentinels below.
var (
	// ErrInvalidConfig is matched by every error that Load and Parse return
	// for a bad configuration (not for an unreadable file: see ErrReadConfig).
	ErrInvalidConfig = errors.New("jobs: invalid config")
	// ErrReadConfig is returned (wrapped, with the os error) when Load cannot
	// read the file at all.
	ErrReadConfig = errors.New("jobs: cannot read config")
	// ErrUnknownFunc marks a `func:` that names no registered function.
	ErrUnknownFunc = errors.New("jobs: unknown function")
	// ErrBadSchedule marks a schedule that schedule.Parse refuses; it is
	// schedule.ErrBadSchedule.
	ErrBadSchedule = schedule.ErrBadSchedule
	// ErrUnsetVar marks a ${VAR} whose variable is not set and has no default.
	ErrUnsetVar = errors.New("jobs: environment variable not set")
	// ErrBadURL is wrapped by ParseSecretURL's errors (a URL that does not
	// parse, shown without its password).
	ErrBadURL = errors.New("jobs: bad url")
	// ErrPasswordFile marks a redis.password_file that cannot be read.
	ErrPasswordFile = errors.New("jobs: cannot read password file")

	// ErrCommandStart wraps the reason a command job could not be started
	// (missing binary, bad dir, permission): an outcome, not a crash.
	ErrCommandStart = errors.New("jobs: command did not start")
	// ErrCommandExit is matched by *ExitError.
	ErrCommandExit = errors.New("jobs: command failed")
	// ErrHTTPStatus is matched by *StatusError.
	ErrHTTPStatus = errors.New("jobs: unexpected http status")
	// ErrHTTPRequest wraps a transport failure of an HTTP job (refused,
	// timeout, TLS...).
	ErrHTTPRequest = errors.New("jobs: http request failed")
	// ErrPanic wraps a panic recovered from a registered Go function.
	ErrPanic = errors.New("jobs: job function panicked")
	// ErrNoKind is returned by Job.Run for a Job without a runnable kind
	// (a zero Job, or a func job whose function is not registered).
	ErrNoKind = errors.New("jobs: job has nothing to run")
)

// Problem is one configuration problem, located in its file.
type Problem struct {
	File  string
	Line  int    // 1-based; 0 when unknown
	Job   string // job name, "" outside jobs:
	Field string // dotted path of the field inside the job (or top level), "" if none
	Msg   string
	Err   error // a sentinel such as ErrUnknownFunc, or nil
}

// Error formats the problem as "file:line: job NAME: field FIELD: message".
// Outside a job the "job NAME: " part is omitted; in the defaults block it
// reads "defaults: ".
func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	switch {
	case p.Job == defaultsBlock:
		b.WriteString("defaults: ")
	case p.Job != "":
		fmt.Fprintf(&b, "job %s: ", p.Job)
	}
	if p.Field != "" {
		fmt.Fprintf(&b, "field %s: ", p.Field)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap returns the problem's sentinel.
func (p *Problem) Unwrap() error { return p.Err }

// defaultsBlock is the Problem.Job of problems in the defaults: block.
const defaultsBlock = "\x00defaults"

// ConfigError lists every problem found in a configuration, sorted by line.
// errors.Is(err, ErrInvalidConfig) holds, as does errors.Is for the sentinel
// of any listed problem.
type ConfigError struct {
	Problems []*Problem
}

// Error returns one problem per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns ErrInvalidConfig followed by each problem.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, 0, len(e.Problems)+1)
	errs = append(errs, ErrInvalidConfig)
	for _, p := range e.Problems {
		errs = append(errs, p)
	}
	return errs
}

func (e *ConfigError) sort() {
	sort.SliceStable(e.Problems, func(i, j int) bool { return e.Problems[i].Line < e.Problems[j].Line })
}

// ExitError is the outcome of a command job that exited non-zero or was
// killed by a signal. errors.Is(err, ErrCommandExit) holds.
type ExitError struct {
	Code   int    // exit status; -1 when killed by a signal
	Signal string // the signal's name when killed by one, else ""
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "jobs: command killed by signal " + e.Signal
	}
	return fmt.Sprintf("jobs: command exited with status %d", e.Code)
}

// Is reports whether target is ErrCommandExit.
func (e *ExitError) Is(target error) bool { return target == ErrCommandExit }

// StatusError is the outcome of an HTTP job whose response status is not in
// its expect list. errors.Is(err, ErrHTTPStatus) holds.
type StatusError struct {
	Code int
	Body string // the start of the response body, for the log
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("jobs: unexpected http status %d", e.Code)
}

// Is reports whether target is ErrHTTPStatus.
func (e *StatusError) Is(target error) bool { return target == ErrHTTPStatus }
