package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redcron/redcron/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// run calls realMain and returns its exit code and outputs.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = realMain(args, &out, &errb)
	return code, out.String(), errb.String()
}

// writeConfig writes src to a file in a fresh directory and returns its path.
func writeConfig(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jobs.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidateRefusesBrokenConfigs is the table of broken configurations:
// each must exit 2 with "file:line: job NAME: field FIELD:" in the output.
func TestValidateRefusesBrokenConfigs(t *testing.T) {
	t.Setenv("REDCRON_TEST_UNSET", "")
	os.Unsetenv("REDCRON_TEST_UNSET")
	tests := []struct {
		kind  string
		job   string // the job named in the file
		body  string // the job's keys, indented by 4; the job's name is on line 2
		line  int
		field string
		msg   string
	}{
		{"unknown key", "a", "schedule: '@hourly'\n    func: heartbeat\n    schedul: x", 5, "schedul", "unknown key"},
		{"wrong type (bool)", "a", "schedule: '@hourly'\n    func: heartbeat\n    enabled: maybe", 5, "enabled", "want true or false"},
		{"wrong type (command as a string)", "a", "schedule: '@hourly'\n    command: echo hi", 4, "command", "want an argv list"},
		{"wrong type (retry)", "a", "schedule: '@hourly'\n    func: heartbeat\n    retry: 3", 5, "retry", "want a mapping"},
		{"bad duration", "a", "schedule: '@hourly'\n    func: heartbeat\n    lock_ttl: 30", 5, "lock_ttl", "bad duration"},
		{"bad schedule", "a", "schedule: '61 * * * *'\n    func: heartbeat", 3, "schedule", "bad schedule"},
		{"negative @every", "a", "schedule: '@every -5s'\n    func: heartbeat", 3, "schedule", "must be positive"},
		{"sub-second @every", "a", "schedule: '@every 100ms'\n    func: heartbeat", 3, "schedule", "at least 1s"},
		{"schedule that never fires", "a", "schedule: '0 0 30 2 *'\n    func: heartbeat", 3, "schedule", "never fires"},
		{"CRON_TZ prefix", "a", "schedule: 'CRON_TZ=Europe/Paris 0 3 * * *'\n    func: heartbeat", 3, "schedule", "use the job's timezone key"},
		{"missing schedule", "a", "func: heartbeat", 2, "schedule", "missing"},
		{"bad zone", "a", "schedule: '@hourly'\n    timezone: Mars/Olympus\n    func: heartbeat", 4, "timezone", "unknown time zone"},
		{"unknown func", "a", "schedule: '@hourly'\n    func: nope", 4, "func", `unknown function "nope" (registered: heartbeat`},
		{"unknown args key", "a", "schedule: '@hourly'\n    func: heartbeat\n    args: {mesage: hi}", 5, "args", `unknown key "mesage"`},
		{"unusable name", "bad/name", "schedule: '@hourly'\n    func: heartbeat", 2, "name", "unusable job name"},
		{"no kind", "a", "schedule: '@hourly'", 2, "func|command|http", "exactly one of func, command or http"},
		{"several kinds", "a", "schedule: '@hourly'\n    func: heartbeat\n    command: [/bin/true]", 5, "command", "several kinds"},
		{"empty command", "a", "schedule: '@hourly'\n    command: []", 4, "command", "empty command"},
		{"relative http url", "a", "schedule: '@hourly'\n    http: {url: /healthz}", 4, "http.url", "absolute"},
		{"missing http url", "a", "schedule: '@hourly'\n    http: {method: GET}", 4, "http.url", "missing"},
		{"bad http method", "a", "schedule: '@hourly'\n    http: {url: 'http://127.0.0.1:1/', method: FETCH}", 4, "http.method", "bad method"},
		{"zero http timeout", "a", "schedule: '@hourly'\n    http: {url: 'http://127.0.0.1:1/', timeout: 0s}", 4, "http.timeout", "must be positive"},
		{"bad overlap", "a", "schedule: '@hourly'\n    func: heartbeat\n    overlap: sometimes", 5, "overlap", "want forbid, allow or replace"},
		{"lock_ttl under 1s", "a", "schedule: '@hourly'\n    func: heartbeat\n    lock_ttl: 500ms", 5, "lock_ttl", "at least 1s"},
		{"negative timeout", "a", "schedule: '@hourly'\n    func: heartbeat\n    timeout: -1s", 5, "timeout", "must not be negative"},
		{"negative jitter", "a", "schedule: '@hourly'\n    func: heartbeat\n    jitter: -1s", 5, "jitter", "must not be negative"},
		{"jitter not shorter than the interval", "a", "schedule: '*/10 * * * * *'\n    func: heartbeat\n    jitter: 10s", 5, "jitter", "not shorter than the schedule's shortest interval 10s"},
		{"jitter over an uneven schedule", "a", "schedule: '0 0 1,2 * *'\n    func: heartbeat\n    jitter: 25h", 5, "jitter", "shortest interval 24h0m0s"},
		{"negative catchup", "a", "schedule: '@hourly'\n    func: heartbeat\n    catchup_window: -1m", 5, "catchup_window", "must not be negative"},
		{"retry attempts 0", "a", "schedule: '@hourly'\n    func: heartbeat\n    retry: {attempts: 0}", 5, "retry.attempts", "at least 1"},
		{"env on an http job", "a", "schedule: '@hourly'\n    http: {url: 'http://127.0.0.1:1/'}\n    env: {A: b}", 5, "env", "only for command jobs"},
		{"reserved env name", "a", "schedule: '@hourly'\n    command: [/bin/true]\n    env: {REDCRON_FENCE: '1'}", 5, "env", "set by redcron"},
		{"unset ${VAR}", "a", "schedule: '@hourly'\n    http: {url: '${REDCRON_TEST_UNSET}'}", 4, "http.url", "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			src := fmt.Sprintf("jobs:\n  %q:\n    %s\n", tt.job, tt.body)
			path := writeConfig(t, src)
			code, stdout, stderr := run(t, "validate", "--config", path)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stdout:\n%s\nstderr:\n%s\nfile:\n%s", code, stdout, stderr, src)
			}
			want := fmt.Sprintf("%s:%d: job %s: field %s: ", path, tt.line, tt.job, tt.field)
			if !strings.Contains(stderr, want) || !strings.Contains(stderr, tt.msg) {
				t.Errorf("stderr does not hold %q and %q:\n%s\nfile:\n%s", want, tt.msg, stderr, src)
			}
		})
	}
}

// TestValidateRefusesBrokenFiles covers problems outside any job.
func TestValidateRefusesBrokenFiles(t *testing.T) {
	job := "jobs:\n  a: {schedule: '@hourly', func: heartbeat}\n"
	tests := []struct {
		kind, src, want string
	}{
		{"empty file", "", ": no jobs"},
		{"no jobs block", "shutdown_grace: 1s\n", ":1: no jobs"},
		{"empty jobs block", "jobs: {}\n", ":1: field jobs: no jobs"},
		{"unknown top-level key", "jobz: {}\n" + job, ":1: field jobz: unknown key"},
		{"unknown redis field", "redis: {url: 'redis://127.0.0.1:6379', hots: x}\n" + job, ":1: field redis.hots: unknown key"},
		{"bad redis url", "redis: {url: 'http://127.0.0.1'}\n" + job, ":1: field redis.url: bad URL"},
		{"two redis modes", "redis: {url: 'redis://127.0.0.1:6379', cluster: ['127.0.0.1:7000']}\n" + job, ":1: field redis: set only one of"},
		{"quorum of two", "redis: {quorum: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2']}\n" + job, ":1: field redis.quorum: quorum mode needs at least 3"},
		{"bad prefix", "redis: {prefix: 'a{b}'}\n" + job, ":1: field redis.prefix: bad prefix"},
		{"bad defaults value", "defaults: {lock_ttl: 1}\n" + job, ":1: defaults: field lock_ttl: bad duration"},
		{"unknown defaults key", "defaults: {lok_ttl: 1s}\n" + job, ":1: defaults: field lok_ttl: unknown key"},
		{"syntax error", "jobs:\n  a: [\n", ":2: yaml: line 2:"},
		{"duplicate job name", job + "  a: {schedule: '@daily', func: heartbeat}\n", ":3: job a: field name: duplicate job name (first declared at line 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			path := writeConfig(t, tt.src)
			code, _, stderr := run(t, "validate", "--config", path)
			if code != 2 {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, path+tt.want) {
				t.Errorf("stderr does not hold %q:\n%s", path+tt.want, stderr)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	path := writeConfig(t, `redis:
  url: "redis://127.0.0.1:6379"
  read_timeout: 0s
jobs:
  one:
    schedule: "@every -1s"
    func: heartbeat
    lock_ttl: 100ms
  two:
    schedule: "* * * * *"
    command: []
  three:
    schedule: "@hourly"
    http: {url: "ftp://127.0.0.1/x", method: FETCH}
  "four!":
    schedule: "@hourly"
    timezone: Nowhere/City
    func: unknown.fn
`)
	code, _, stderr := run(t, "validate", "--config", path)
	if code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	want := []string{
		":3: field redis.read_timeout: ",
		":6: job one: field schedule: ",
		":8: job one: field lock_ttl: ",
		":11: job two: field command: ",
		":14: job three: field http.url: ",
		":14: job three: field http.method: ",
		":15: job four!: field name: ",
		":17: job four!: field timezone: ",
		":18: job four!: field func: ",
	}
	for _, w := range want {
		if !strings.Contains(stderr, path+w) {
			t.Errorf("missing %q in:\n%s", path+w, stderr)
		}
	}
	if got := len(regexp.MustCompile(regexp.QuoteMeta(path)+`:\d+: `).FindAllString(stderr, -1)); got != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", got, len(want), stderr)
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d problem(s)", len(want))) {
		t.Errorf("stderr lacks the problem count:\n%s", stderr)
	}
}

func TestValidateExampleJobsYAML(t *testing.T) {
	old := now
	now = func() time.Time { return time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC) }
	t.Cleanup(func() { now = old })
	code, stdout, stderr := run(t, "validate", "--config", "../../jobs.yaml")
	if code != 0 {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
	}
	for _, w := range []string{
		"3 job(s), valid",
		"heartbeat  ../../jobs.yaml:", "kind:     func heartbeat",
		"fenced-echo", "kind:     command sh -c",
		"self-check", "kind:     http GET http://127.0.0.1:9090/healthz", "timezone: Europe/Paris",
		// every 5s, in UTC and UTC
		"2026-03-29T01:00:00Z   2026-03-29T01:00:00Z",
		// every 15s in Paris, which just moved to summer time
		"2026-03-29T03:00:00+02:00   2026-03-29T01:00:00Z",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^    \S+   \S+Z$`).FindAllString(stdout, -1)); n != 9 {
		t.Errorf("got %d fire-time lines, want 3 jobs x 3:\n%s", n, stdout)
	}
}

func TestValidateUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"missing file", []string{"validate", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, 2, "cannot read config"},
		{"directory", []string{"validate", "--config", t.TempDir()}, 2, "cannot read config"},
		{"no --config", []string{"validate"}, 2, "--config FILE is required"},
		{"unknown flag", []string{"validate", "--confg", "x"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"validate", "--config", "x", "y"}, 2, "unexpected arguments"},
		{"validate --help", []string{"validate", "--help"}, 0, "Usage: redcron validate"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no command", nil, 2, "Usage:"},
		{"run with a bad log level", []string{"run", "--config", "../../jobs.yaml", "--log-level", "loud"}, 2, "--log-level"},
		{"run with a bad redis url", []string{"run", "--config", "../../jobs.yaml", "--redis", "mysql://x", "--http", "off"}, 2, "redis url"},
		{"run without --config", []string{"run"}, 2, "--config FILE is required"},
		{"run with a bad config", []string{"run", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, 2, "cannot read config"},
		{"version with args", []string{"version", "x"}, 2, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

// TestReadAuthUsage: reads behind the token need a token, and a bad
// REDCRON_HTTP_READ_AUTH is refused rather than read as false.
func TestReadAuthUsage(t *testing.T) {
	tests := []struct {
		name, token, env string
		args             []string
		want             string
	}{
		{"flag without a token", "", "", []string{"--http-read-auth"}, "--http-read-auth needs the token in $REDCRON_HTTP_TOKEN"},
		{"env without a token", "", "1", nil, "--http-read-auth needs the token in $REDCRON_HTTP_TOKEN"},
		{"bad env value", "tok", "maybe", nil, `$REDCRON_HTTP_READ_AUTH="maybe": want 1, true, 0 or false`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("REDCRON_HTTP_TOKEN", tt.token)
			t.Setenv("REDCRON_HTTP_READ_AUTH", tt.env)
			code, _, stderr := run(t, append([]string{"run", "--config", "../../jobs.yaml", "--http", "off"}, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

// TestLoggerRedacts: every log line, at every level, shows a secret as
// its label and stays one JSON object, numbers untouched.
func TestLoggerRedacts(t *testing.T) {
	sec := jobs.NewSecrets()
	sec.Add("s3cret-value", "${X}")
	sec.Add("8080", "${PORT}")
	var b bytes.Buffer
	log, err := newLogger(withSecrets(&b, sec), "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Str("url", "http://h:8080/?t=s3cret-value").Int("port", 8080).Msg("s3cret-value")
	log.Error().Err(fmt.Errorf("auth %q refused", "s3cret-value")).Msg("x")
	for line := range strings.Lines(b.String()) {
		if !json.Valid([]byte(line)) {
			t.Errorf("not one JSON object: %s", line)
		}
	}
	got := b.String()
	if strings.Contains(got, "s3cret") || !strings.Contains(got, `"port":8080`) || !strings.Contains(got, `http://h:${PORT}/?t=${X}`) {
		t.Errorf("log:\n%s\nwant the secrets shown as ${X} and ${PORT}, the port number kept", got)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		code, stdout, _ := run(t, args...)
		if code != 0 || !strings.Contains(stdout, "redcron validate --config FILE") {
			t.Errorf("%v: exit %d, stdout:\n%s\nwant 0 and the usage", args, code, stdout)
		}
	}
	code, stdout, _ := run(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "redcron ") {
		t.Errorf("version: exit %d, stdout %q; want 0 and \"redcron ...\"", code, stdout)
	}
}
