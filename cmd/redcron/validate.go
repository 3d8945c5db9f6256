package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redcron/redcron/jobs"
)

// now is the validate command's clock; tests may replace it.
var now = time.Now

func validateCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "path of the jobs.yaml to check (required)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: redcron validate --config FILE\n\nExit 0 and every job with its next three fire times, or exit 2 and every problem with file:line.")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	cfg, code := loadConfig("validate", *config, stderr)
	if cfg == nil {
		return code
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w.Error())
	}
	fmt.Fprintf(stdout, "%s: %d job(s), valid\n", cfg.File, len(cfg.Jobs))
	t := now()
	for _, j := range cfg.Jobs {
		printJob(stdout, j, t)
	}
	return exitOK
}

// parseFlags parses args; done means return code now (help: 0, error: 2).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK, true
		}
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "redcron %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitUsage, true
	}
	return 0, false
}

func printJob(w io.Writer, j *jobs.Job, t time.Time) {
	what := j.Kind
	switch j.Kind {
	case jobs.KindFunc:
		what += " " + j.Func
	case jobs.KindCommand:
		what += " " + strings.Join(j.Command.Argv, " ")
	case jobs.KindHTTP:
		what += " " + j.HTTP.Method + " " + j.HTTP.URL
	}
	state := ""
	if !j.Enabled {
		state = " (disabled: never runs)"
	}
	fmt.Fprintf(w, "\n%s  %s:%d%s\n  kind:     %s\n  schedule: %q\n  timezone: %s\n  next (%s, UTC):\n", j.Name, j.File, j.Line, state, what, j.Spec, j.Location, j.Location)
	for _, at := range nextFires(j, t, 3) {
		fmt.Fprintf(w, "    %s   %s\n", at.In(j.Location).Format(time.RFC3339), at.UTC().Format(time.RFC3339))
	}
}

// nextFires returns the next n fire times after t, as the scheduler computes
// them (epoch-anchored @every, the job's zone, Vixie cron's DST rule).
func nextFires(j *jobs.Job, t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for range n {
		if t = j.Schedule.Next(t); t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}
