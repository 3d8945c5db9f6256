package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/statusapi"
)

// readAuthEnv, when true (1, true), puts the reads behind the token as
// --http-read-auth does.
const readAuthEnv = "REDCRON_HTTP_READ_AUTH"

// envBool reads a boolean environment variable: unset or empty is false.
func envBool(name string) (bool, error) {
	v := os.Getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("$%s=%q: want 1, true, 0 or false", name, v)
	}
	return b, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// defaultHTTP is where run serves its endpoints unless told otherwise.
const defaultHTTP = "127.0.0.1:9090"

// flagSet reports whether the named flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// runCommand is `redcron run`: one replica of the scheduler over a jobs.yaml,
// until SIGTERM or SIGINT, then a graceful shutdown and exit 0.
func runCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "path of the jobs.yaml to run (required)")
	redisURL := fs.String("redis", "", "Redis URL, overrides the config's redis block (default $REDCRON_REDIS_URL)")
	replica := fs.String("replica", "", "this replica's id (default $REDCRON_REPLICA, else host-pid)")
	httpAddr := fs.String("http", defaultHTTP, "address for /healthz, /readyz and /metrics; a bare :PORT binds 127.0.0.1; \"off\" disables it")
	readAuth := fs.Bool("http-read-auth", false, "reads (the status API and /metrics) need the bearer token $"+tokenEnv+" too (default $"+readAuthEnv+")")
	allowHosts := fs.String("http-allow-host", "", "on a loopback --http, Host names accepted besides localhost, 127.x and [::1] (a local reverse proxy's), comma-separated")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	secretsOf(stderr).AddURLPassword(*redisURL, jobs.RedactedLabel)
	token := os.Getenv(tokenEnv)
	if !flagSet(fs, "http-read-auth") {
		v, err := envBool(readAuthEnv)
		if err != nil {
			fmt.Fprintf(stderr, "redcron run: %v\n", err)
			return exitUsage
		}
		*readAuth = v
	}
	if *readAuth && token == "" {
		fmt.Fprintf(stderr, "redcron run: --http-read-auth needs the token in $%s\n", tokenEnv)
		return exitUsage
	}
	// From here on, what the command logs or prints to stderr goes through
	// one queue, written before runCommand returns.
	stderr, closeStderr := queueLines(stderr)
	defer func() { _ = closeStderr() }()
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "redcron run: %v\n", err)
		return exitUsage
	}
	redis.SetLogger(redisLog{log})
	cfg, code := loadConfig("run", *config, stderr)
	if cfg == nil {
		return code
	}
	for _, w := range cfg.Warnings {
		log.Warn().Str("file", w.File).Int("line", w.Line).Str("job", w.Job).Str("field", w.Field).Msg(w.Msg)
	}
	// Decoding leaves the file's node tree as garbage: collect it before
	// the scheduler is built, whose states then reuse its memory instead
	// of adding to it (100,000 jobs: peak RSS 226 MiB down to 176-182,
	// and building takes 130 ms instead of 270). Not FreeOSMemory: the
	// pages would go back to the OS only to be faulted in again.
	runtime.GC()
	if *replica == "" {
		*replica = os.Getenv("REDCRON_REPLICA") // "" means the scheduler's default, host-pid
	}
	clock, offset, err := clockFromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "redcron run: %v\n", err)
		return exitUsage
	}
	if offset != "" {
		log.Warn().Str("offset", offset).Msg("clock offset set: this replica's clock is shifted (fault-injection tests only)")
	}
	if *redisURL == "" {
		*redisURL = os.Getenv("REDCRON_REDIS_URL")
	}
	trial, closeTrial, err := trialConn(cfg.Redis, *redisURL, log)
	if err != nil {
		fmt.Fprintf(stderr, "redcron run: %v\n", err)
		return exitFailure
	}
	defer closeTrial()

	// The status port is bound first, so that the replica's registration
	// names it.
	var ln net.Listener
	advertised := ""
	if *httpAddr != "off" && *httpAddr != "" {
		ln, err = listenHTTP(*httpAddr)
		switch {
		case err != nil && !flagSet(fs, "http"):
			// The default port is taken, most likely by another replica on
			// this machine: a trial replica still starts, without endpoints.
			log.Warn().Err(err).Msg("http endpoints off: the default address is taken; pass --http ADDR")
		case err != nil:
			fmt.Fprintf(stderr, "redcron run: %v\n", err)
			return exitFailure
		default:
			advertised = ln.Addr().String()
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reloadErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "redcron_config_reload_errors_total", Help: "SIGHUP reloads refused because the file was invalid (the old jobs kept running).",
	})
	reg.MustRegister(reloadErrors)
	sched, err := scheduler.FromConfig(cfg, scheduler.Options{
		Secrets:    cfg.Secrets,
		Replica:    *replica,
		Clock:      clock,
		Logger:     &log,
		Registerer: reg,
		RedisURL:   *redisURL,
		Conn:       trial,
		Version:    versionString(),
		HTTP:       advertised,
	})
	if err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		fmt.Fprintf(stderr, "redcron run: %v\n", err)
		return exitUsage
	}
	defer sched.Close()
	*replica = sched.Replica()
	// Hand back what building the scheduler left behind (100,000 jobs:
	// RSS 110 MiB down to 102).
	debug.FreeOSMemory()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// After the first signal, a second one kills the process: a job
		// that ignores its cancelled context must not make it unstoppable.
		<-ctx.Done()
		stop()
	}()
	// The checks at start come before anything says it started: a user
	// refused by Redis's ACL gets no "redcron started" and no served port.
	if err := sched.Preflight(ctx); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		log.Error().Str("replica", *replica).Err(err).Msg("redcron cannot start")
		return exitFailure
	}
	stopReload := reloadOnHUP(ctx, cfg, sched, reloadErrors, log)
	defer stopReload()

	var srv *httpServer
	if ln != nil {
		status := statusapi.SchedulerConfig(sched, token)
		status.ReadAuth = *readAuth
		srv = serveHTTP(ln, sched, reg, httpOptions{
			status: statusapi.New(status), token: token, readAuth: *readAuth, allowHosts: splitList(*allowHosts),
		}, log)
	}
	log.Info().Str("replica", *replica).Str("config", cfg.File).Int("jobs", len(cfg.Jobs)).Str("redis", sched.Conn().Describe).Msg("redcron started")
	err = sched.Run(ctx)
	if srv != nil {
		srv.shutdown()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Str("replica", *replica).Err(err).Msg("redcron stopped with an error")
		return exitFailure
	}
	log.Info().Str("replica", *replica).Msg("redcron stopped")
	return exitOK
}
