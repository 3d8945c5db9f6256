package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/redisconn"
	"github.com/redcron/redcron/scheduler/store"
)

// The control commands (status, history, next, trigger, pause, resume,
// replicas) read the same jobs.yaml as the replicas and reach Redis through
// its redis: block (or --redis / REDCRON_REDIS_URL); no HTTP endpoint is
// needed. Flags may come before or after the job's name.

// controlFlags are the flags every control command takes.
type controlFlags struct {
	fs       *flag.FlagSet
	config   *string
	redisURL *string
	json     *bool
}

func newControlFlags(name string, stderr io.Writer, withJSON bool) *controlFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &controlFlags{fs: fs,
		config:   fs.String("config", "", "path of the jobs.yaml (required)"),
		redisURL: fs.String("redis", "", "Redis URL, overrides the config's redis block (default $REDCRON_REDIS_URL)"),
	}
	if withJSON {
		c.json = fs.Bool("json", false, "print JSON")
	} else {
		c.json = new(bool)
	}
	return c
}

// parse parses args, flags before or after the positional arguments, which
// it returns; done means return code now (help: 0, bad usage: 2).
func (c *controlFlags) parse(args []string, minPos, maxPos int, stderr io.Writer) (pos []string, code int, done bool) {
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, true
			}
			return nil, exitUsage, true
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) < minPos || len(pos) > maxPos {
		want := "no argument"
		switch {
		case minPos == 1 && maxPos == 1:
			want = "one JOB"
		case minPos == 0 && maxPos == 1:
			want = "at most one JOB"
		}
		fmt.Fprintf(stderr, "redcron %s: want %s, got %q\n", c.fs.Name(), want, pos)
		return nil, exitUsage, true
	}
	return pos, 0, false
}

// open loads the config and connects to its Redis: the redis: block, or
// --redis / REDCRON_REDIS_URL, or, with none, the embedded trial server a
// replica on this machine serves. It checks that each name in jobNames is a
// job of the file. On failure it prints why and returns the exit code.
func (c *controlFlags) open(stderr io.Writer, jobNames ...string) (*jobs.Config, *store.Store, func(), int) {
	cmd := c.fs.Name()
	cfg, code := loadConfig(cmd, *c.config, stderr)
	if cfg == nil {
		return nil, nil, nil, code
	}
	for _, name := range jobNames {
		if cfg.Job(name) == nil {
			fmt.Fprintf(stderr, "redcron %s: %s has no job %q\n", cmd, cfg.File, name)
			return nil, nil, nil, exitUsage
		}
	}
	url := *c.redisURL
	secretsOf(stderr).AddURLPassword(url, jobs.RedactedLabel)
	if url == "" {
		url = os.Getenv("REDCRON_REDIS_URL")
	}
	if !redisConfigured(cfg.Redis, url) {
		// A trial replica's embedded server, only if it provably is one.
		if err := embedredis.Verify(context.Background(), embedredis.DefaultAddr); err != nil {
			fmt.Fprintf(stderr, "redcron %s: no Redis configured (redis: block, --redis or REDCRON_REDIS_URL), and no trial replica's embedded server on this machine: %v\n", cmd, err)
			return nil, nil, nil, exitFailure
		}
		url = "redis://" + embedredis.DefaultAddr + "/0"
	}
	conn, err := redisconn.Dial(cfg.Redis, url, locker.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "redcron %s: %v\n", cmd, err)
		return nil, nil, nil, exitUsage
	}
	return cfg, store.New(conn.Locker, cfg.Redis.Prefix), func() { _ = conn.Close() }, exitOK
}

// begin is parse then open: the positional arguments (a job's name, which
// open checks, when there is one), the config, its store and how to close
// it; cfg is nil when the command must return code.
func (c *controlFlags) begin(args []string, minPos, maxPos int, stderr io.Writer) (pos []string, cfg *jobs.Config, st *store.Store, closeConn func(), code int) {
	pos, code, done := c.parse(args, minPos, maxPos, stderr)
	if done {
		return nil, nil, nil, nil, code
	}
	cfg, st, closeConn, code = c.open(stderr, pos...)
	return pos, cfg, st, closeConn, code
}

// source is a statusapi.Source over a config's jobs and a store.
type source struct {
	cfg *jobs.Config
	st  *store.Store
}

func (s source) Jobs() []*jobs.Job   { return s.cfg.Jobs }
func (s source) Store() *store.Store { return s.st }
func (s source) Now() time.Time      { return time.Now() }

// table writes aligned columns; call flush at the end.
func table(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

// utc formats t in UTC seconds, "-" for the zero time.
func utc(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// brief is s on one line, at most n characters.
func brief(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
