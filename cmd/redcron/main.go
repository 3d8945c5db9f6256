// Command redcron is the replicated cron scheduler's binary: `run` a
// jobs.yaml as one replica, `validate` it, see and steer the cluster
// (status, history, next, trigger, pause, resume, replicas), or print the
// `version`.
//
// Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes, part of the interface other tools rely on.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad usage or bad config
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `redcron: a replicated cron scheduler

Usage:
  redcron run      --config FILE [--redis URL] [--replica ID] [--http ADDR] [--http-read-auth] [--log-level LEVEL]
  redcron validate --config FILE
  redcron status   --config FILE [--json]                 jobs, paused, running, next, last, drift
  redcron history  JOB --config FILE [--limit N] [--failures] [--json]
  redcron next     [JOB] --config FILE [--count N] [--json]
  redcron trigger  JOB --config FILE [--wait] [--timeout D] [--json]
  redcron pause    JOB --config FILE [--note TEXT]
  redcron resume   JOB --config FILE
  redcron replicas --config FILE [--json]
  redcron version
  redcron help

The control commands reach Redis through the config's redis: block (or
--redis); flags may come before or after JOB.

Environment: REDCRON_REDIS_URL, REDCRON_REDIS_PASSWORD (over the redis:
block's password), REDCRON_REPLICA (default host-pid), REDCRON_HTTP_TOKEN
(bearer token for pause, resume and trigger over --http, and for reads
with REDCRON_HTTP_READ_AUTH=1 or --http-read-auth), REDCRON_CLOCK_OFFSET or
REDCRON_CLOCK_OFFSET_FILE (fault-injection tests only: a duration added to
the clock, or a file holding one, re-read).
Secrets (${VAR} values, Redis passwords, the token) show as ${VAR} or ***
in everything redcron prints, logs, records and serves.
Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.
Run "redcron COMMAND --help" for a command's flags.
`

// realMain runs the command line args (without the program name) and
// returns the exit code.
func realMain(args []string, stdout, stderr io.Writer) int {
	sec := envSecrets() // the config's are added when it is loaded
	stdout, stderr = withSecrets(stdout, sec), withSecrets(stderr, sec)
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return runCommand(rest, stdout, stderr)
	case "validate":
		return validateCommand(rest, stdout, stderr)
	case "status":
		return statusCommand(rest, stdout, stderr)
	case "history":
		return historyCommand(rest, stdout, stderr)
	case "next":
		return nextCommand(rest, stdout, stderr)
	case "trigger":
		return triggerCommand(rest, stdout, stderr)
	case "pause":
		return pauseCommand(true)(rest, stdout, stderr)
	case "resume":
		return pauseCommand(false)(rest, stdout, stderr)
	case "replicas":
		return replicasCommand(rest, stdout, stderr)
	case "version", "--version":
		return versionCommand(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "redcron: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
