package jobs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	cfg := mustParse(t, `
jobs:
  a:
    schedule: "@every 10s"
    func: test.noargs
`, nil)
	if got, want := len(cfg.Jobs), 1; got != want {
		t.Fatalf("got %d jobs, want %d", got, want)
	}
	j := cfg.Jobs[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"Name", j.Name, "a"},
		{"Line", j.Line, 3},
		{"Kind", j.Kind, KindFunc},
		{"LockTTL", j.LockTTL, 30 * time.Second},
		{"Overlap", j.Overlap, OverlapForbid},
		{"Timeout", j.Timeout, time.Duration(0)},
		{"Retry", j.Retry, Retry{Attempts: 1, Backoff: time.Second, MaxBackoff: time.Minute}},
		{"CatchupWindow", j.CatchupWindow, time.Minute},
		{"Jitter", j.Jitter, time.Duration(0)},
		{"Enabled", j.Enabled, true},
		{"Location", j.Location, time.UTC},
		{"Redis.Prefix", cfg.Redis.Prefix, ""}, // the scheduler's default
		{"Redis.DialTimeout", cfg.Redis.DialTimeout, time.Second},
		{"Redis.ReadTimeout", cfg.Redis.ReadTimeout, 500 * time.Millisecond},
		{"Redis.WriteTimeout", cfg.Redis.WriteTimeout, 500 * time.Millisecond},
		{"Redis.MaxClockSkew", cfg.Redis.MaxClockSkew, time.Duration(0)},
		{"Redis.URL", cfg.Redis.URL, ""},
		{"ShutdownGrace", cfg.ShutdownGrace, time.Duration(0)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseDefaultsBlockAndOverrides(t *testing.T) {
	cfg := mustParse(t, `
shutdown_grace: 10s
redis: {url: "rediss://user@127.0.0.1:6380/1", prefix: "rc", read_timeout: 2s}
defaults:
  lock_ttl: 1m
  overlap: allow
  timeout: 20s
  jitter: 2s
  catchup_window: 0s
  timezone: Europe/Paris
  enabled: false
  retry: {attempts: 3, backoff: 2s}
  env: {A: "1", B: "2"}
  kill_grace: 1s
  http: {timeout: 3s, headers: {X-Team: ops}}
jobs:
  cmd:
    schedule: "0 3 * * *"
    command: [/bin/true]
    env: {B: "20", C: "30"}
    retry: {max_backoff: 5m}
    enabled: true
  web:
    schedule: "@hourly"
    http: {url: "http://127.0.0.1:1/x", method: post, headers: {X-Other: "y"}}
    overlap: replace
`, nil)
	if got, want := cfg.ShutdownGrace, 10*time.Second; got != want {
		t.Errorf("ShutdownGrace = %s, want %s", got, want)
	}
	if !cfg.Redis.TLS || cfg.Redis.Prefix != "rc" || cfg.Redis.ReadTimeout != 2*time.Second {
		t.Errorf("Redis = %+v, want TLS from rediss://, prefix rc, read_timeout 2s", cfg.Redis)
	}
	c, w := cfg.Job("cmd"), cfg.Job("web")
	if c == nil || w == nil {
		t.Fatalf("jobs = %v, want cmd and web", cfg.Jobs)
	}
	if c.LockTTL != time.Minute || c.Overlap != OverlapAllow || c.Timeout != 20*time.Second || c.Jitter != 2*time.Second || c.CatchupWindow != 0 {
		t.Errorf("cmd = %+v, want the defaults block's values", c)
	}
	if got, want := c.Retry, (Retry{Attempts: 3, Backoff: 2 * time.Second, MaxBackoff: 5 * time.Minute}); got != want {
		t.Errorf("cmd retry = %+v, want %+v (merged key by key)", got, want)
	}
	if !c.Enabled || w.Enabled {
		t.Errorf("Enabled cmd=%v web=%v, want true (own key) and false (defaults)", c.Enabled, w.Enabled)
	}
	if got := c.Location.String(); got != "Europe/Paris" {
		t.Errorf("Location = %s, want Europe/Paris", got)
	}
	if got, want := c.Command.Env, map[string]string{"A": "1", "B": "20", "C": "30"}; !equalMaps(got, want) {
		t.Errorf("env = %v, want %v (merged, job wins)", got, want)
	}
	if got, want := c.Command.KillGrace, time.Second; got != want {
		t.Errorf("KillGrace = %s, want %s", got, want)
	}
	if w.Kind != KindHTTP || w.HTTP.Method != "POST" || w.HTTP.Timeout != 3*time.Second || w.Overlap != OverlapReplace {
		t.Errorf("web = %+v %+v, want http POST timeout 3s overlap replace", w, w.HTTP)
	}
	if got, want := w.HTTP.Headers, map[string]string{"X-Team": "ops", "X-Other": "y"}; !equalMaps(got, want) {
		t.Errorf("headers = %v, want %v", got, want)
	}
	if c.Kind != KindCommand {
		t.Errorf("cmd kind = %q, want command (own kind wins over the defaults' http)", c.Kind)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestParseExpandsEnv(t *testing.T) {
	cfg := mustParse(t, `
redis:
  url: ${REDIS_URL}
  password: ${PW:-}
jobs:
  a:
    schedule: ${SCHED:-@every 5s}
    lock_ttl: ${TTL:-45s}
    retry:
      attempts: ${N:-4}
    enabled: "${ENABLED:-false}"
    command: ["sh", "-c", "echo $HOME $${X} ${GREETING}"]
`, map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/2", "GREETING": "hi"})
	j := cfg.Jobs[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"redis.url", cfg.Redis.URL, "redis://127.0.0.1:6379/2"},
		{"redis.password", cfg.Redis.Password, ""},
		{"schedule", j.Spec, "@every 5s"},
		{"lock_ttl", j.LockTTL, 45 * time.Second},
		{"retry.attempts (an int after expansion)", j.Retry.Attempts, 4},
		{"command[2]", j.Command.Argv[2], "echo $HOME ${X} hi"},
		{"enabled (quoted, a bool after expansion)", j.Enabled, false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseArgsIntoStruct(t *testing.T) {
	cfg := mustParse(t, `
jobs:
  a:
    schedule: "@every 5s"
    func: test.echo
    args:
      message: hello
      count: 3
      tags: [x, y]
      nested: {deep: 7}
`, nil)
	j := cfg.Jobs[0]
	calls.Lock()
	n := len(calls.args)
	calls.Unlock()
	if err := j.Run(t.Context(), Run{Fence: 9, Attempt: 1}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	calls.Lock()
	defer calls.Unlock()
	got := calls.args[n]
	if got.Message != "hello" || got.Count != 3 || len(got.Tags) != 2 || got.Nested.Deep != 7 {
		t.Errorf("args = %+v, want message hello, count 3, tags [x y], nested.deep 7", got)
	}
	if r := calls.runs[n]; r.Job != "a" || r.Fence != 9 {
		t.Errorf("run = %+v, want job a (filled in), fence 9", r)
	}
}

// problemsOf parses src and returns its problems (failing if it parses).
func problemsOf(t *testing.T, src string, env map[string]string) []*Problem {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(src), mapEnv(env))
	if err == nil {
		t.Fatalf("Parse = %+v, want an error", cfg)
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("errors.Is(err, ErrInvalidConfig) = false for %v", err)
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("got %T, want *ConfigError", err)
	}
	return ce.Problems
}

// TestDuplicateKeys checks both ways pairs finds a repeated key: a scan
// for a block of a few keys, a map for one of more than pairsScanMax.
func TestDuplicateKeys(t *testing.T) {
	var env strings.Builder
	for i := 0; i < pairsScanMax+4; i++ {
		fmt.Fprintf(&env, "      V%d: x\n", i)
	}
	cases := []struct {
		name, src, want string
	}{
		{"few keys", "jobs:\n  a:\n    schedule: \"@hourly\"\n    func: test.noargs\n    schedule: \"@daily\"\n",
			"test.yaml:5: job a: field schedule: duplicate key (first at line 3)"},
		{"many keys", "jobs:\n  a:\n    schedule: \"@hourly\"\n    command: [\"true\"]\n    env:\n" + env.String() + "      V3: y\n",
			fmt.Sprintf("test.yaml:%d: job a: field env.V3: duplicate key (first at line 9)", 6+pairsScanMax+4)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problemsOf(t, c.src, nil)
			if len(ps) != 1 || ps[0].Error() != c.want {
				t.Fatalf("got %v, want [%s]", ps, c.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	ps := problemsOf(t, `
redis: {url: "http://x", hots: y}
jobs:
  a:
    schedule: "@every -1s"
    func: missing.fn
  b:
    schedule: "* * * * *"
    command: []
    lock_ttl: 10
  a:
    schedule: "@hourly"
    func: test.noargs
  c:
    schedule: "* * * * *"
    http: {url: "/rel"}
    args: {x: 1}
`, nil)
	want := []string{
		"test.yaml:2: field redis.url: ",
		"test.yaml:2: field redis.hots: unknown key",
		"test.yaml:5: job a: field schedule: ",
		"test.yaml:6: job a: field func: unknown function \"missing.fn\"",
		"test.yaml:9: job b: field command: empty command",
		"test.yaml:10: job b: field lock_ttl: bad duration",
		"test.yaml:11: job a: field name: duplicate job name (first declared at line 4)",
		"test.yaml:16: job c: field http.url: ",
		"test.yaml:17: job c: field args: only for func jobs",
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing problem %q in:\n%s", w, all)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(ps), len(want), all)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Errorf("problems not sorted by line:\n%s", all)
		}
	}
}

func TestParseProblemSentinels(t *testing.T) {
	ps := problemsOf(t, `
jobs:
  a: {schedule: "@every 1s", func: nope}
  b: {schedule: "bad", func: test.noargs}
  c: {schedule: "@every 1s", command: ["${UNSET}"]}
`, nil)
	var err error = &ConfigError{Problems: ps}
	for _, s := range []error{ErrInvalidConfig, ErrUnknownFunc, ErrBadSchedule, ErrUnsetVar} {
		if !errors.Is(err, s) {
			t.Errorf("errors.Is(err, %v) = false, want true; err:\n%v", s, err)
		}
	}
}

func TestParseArgsProblems(t *testing.T) {
	ps := problemsOf(t, `
jobs:
  a:
    schedule: "@every 5s"
    func: test.echo
    args:
      message: hi
      cuont: 3
      nested: {deep: 1, deeper: 2}
  b:
    schedule: "@every 5s"
    func: test.echo
    args: {count: many}
  c:
    schedule: "@every 5s"
    func: test.noargs
    args: {x: 1}
`, nil)
	want := []string{
		`test.yaml:8: job a: field args: unknown key "cuont"`,
		`test.yaml:9: job a: field args: unknown key "deeper"`,
		"test.yaml:13: job b: field args: cannot unmarshal",
		`test.yaml:17: job c: field args: unknown key "x" (known: none)`,
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in:\n%s", w, all)
		}
	}
}

func TestParseNoJobs(t *testing.T) {
	for name, src := range map[string]string{
		"empty file":       "",
		"comment only":     "# nothing\n",
		"null document":    "~\n",
		"no jobs key":      "redis: {prefix: x}\n",
		"empty jobs":       "jobs: {}\n",
		"null jobs":        "jobs:\n",
		"jobs is a list":   "jobs: [a, b]\n",
		"document is list": "- a\n",
		"two documents":    "jobs: {a: {schedule: '@hourly', func: test.noargs}}\n---\njobs: {}\n",
		"syntax error":     "jobs:\n  a: [\n",
		"tab indentation":  "jobs:\n\ta: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			ps := problemsOf(t, src, nil)
			if len(ps) == 0 {
				t.Fatal("no problems reported")
			}
			if !strings.HasPrefix(ps[0].Error(), "test.yaml") {
				t.Errorf("problem %q does not name the file", ps[0].Error())
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	cfg := mustParse(t, `
redis: {quorum: ["redis://127.0.0.1:1", "redis://127.0.0.1:2", "redis://127.0.0.1:3", "redis://127.0.0.1:4"]}
jobs:
  a: {schedule: "@every 10s", lock_ttl: 3s, kill_grace: 2s, command: ["no-such-binary-redcron"]}
`, nil)
	var got []string
	for _, w := range cfg.Warnings {
		got = append(got, w.Error())
	}
	all := strings.Join(got, "\n")
	for _, w := range []string{"field redis.quorum: an even number", "job a: field kill_grace: kill_grace 2s is longer than lock_ttl/3 (1s)", "job a: field command: \"no-such-binary-redcron\" is not in this machine's PATH"} {
		if !strings.Contains(all, w) {
			t.Errorf("missing warning %q in:\n%s", w, all)
		}
	}
}

func TestParseDisabledJobStaysDeclared(t *testing.T) {
	cfg := mustParse(t, "jobs:\n  a: {schedule: '@hourly', func: test.noargs, enabled: false}\n", nil)
	if len(cfg.Jobs) != 1 || cfg.Jobs[0].Enabled {
		t.Errorf("jobs = %+v, want one disabled job", cfg.Jobs)
	}
}

func TestParseRelativeDir(t *testing.T) {
	cfg, err := Parse("/etc/redcron/jobs.yaml", []byte("jobs:\n  a: {schedule: '@hourly', command: [/bin/true], dir: scripts}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Jobs[0].Command.Dir, "/etc/redcron/scripts"; got != want {
		t.Errorf("Dir = %q, want %q (relative to the config file)", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrReadConfig) || !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Load(missing) = %v, want ErrReadConfig and os.ErrNotExist, not ErrInvalidConfig", err)
	}
	path := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(path, []byte("jobs:\n  a: {schedule: '@hourly', func: test.noargs}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.File != path || cfg.Jobs[0].File != path {
		t.Errorf("File = %q / %q, want %q", cfg.File, cfg.Jobs[0].File, path)
	}
}
