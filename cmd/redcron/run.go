package main

import (
	"flag"
	"fmt"
	"io"
)

// runCommand is `redcron run`. For now it parses the flags and loads and
// validates the config; the lead replaces its body with the scheduler wiring.
func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "path of the jobs.yaml to run (required)")
	fs.String("redis", "", "Redis URL, overrides the config's redis.url (default $REDCRON_REDIS_URL)")
	fs.String("replica", "", "this replica's id (default $REDCRON_REPLICA, else host-pid)")
	fs.String("http", "", "address for /healthz, /readyz, /metrics and the status API, e.g. 127.0.0.1:9090 (default: off)")
	fs.String("log-level", "info", "debug, info, warn or error")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	if _, code := loadConfig("run", *config, stderr); code != exitOK {
		return code
	}
	fmt.Fprintln(stderr, "run: scheduler not wired yet")
	return exitFailure
}
