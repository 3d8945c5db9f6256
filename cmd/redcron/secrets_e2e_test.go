package main

// TestSecretsStayIn checks promise 10 on the built binary: a config where
// every field that can carry a secret does (an HTTP job's URL, headers and
// body; a command's argv and env; the Redis URL and password; a notify
// webhook's URL and headers; the HTTP token), with jobs that fail and
// echo what they got, and then everything that left the process is read
// for the secrets: the replica's log at debug level, validate's output,
// every /api/ answer, the page, /metrics, the records in Redis (history
// --json, status --json, and every key Redis holds), the notification
// bodies a local webhook received, and the errors of a bad --redis URL.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/scheduler/store"
)

// secretsConfig is the jobs.yaml of the test; %s is the echo server's
// address, then the webhook's.
const secretsConfig = `redis:
  url: "${REDIS_URL}"
  password_file: redis.pw
  prefix: sec
shutdown_grace: 2s
defaults:
  lock_ttl: 3s
  notify:
    on: [failure]
    webhook: "http://%[2]s/hook/${HOOK_PATH}"
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
jobs:
  call-api:
    schedule: "* * * * * *"
    http:
      url: "http://%[1]s/echo?token=${TOKEN_URL}"
      method: POST
      headers: {Authorization: "Bearer ${TOKEN_HDR}"}
      body: '{"key": "${TOKEN_BODY}"}'
      timeout: 2s
  call-down:
    schedule: "* * * * * *"
    http: {url: "http://127.0.0.1:1/down?token=${TOKEN_URL}", timeout: 1s}
  shell:
    schedule: "* * * * * *"
    command: ["sh", "-c", 'echo "argv: $1"; env | sort; exit 3', "sh", "${CMD_ARG}"]
    env: {API_KEY: "${CMD_ENV}"}
    output_tail: 65536
`

// secretValues are the values the test puts in the environment (and the
// Redis password, in a file); none may leave the process.
var secretValues = map[string]string{
	"TOKEN_URL":  "tokurl-5f1e0c9a77",
	"TOKEN_HDR":  "tokhdr-8b2d4e6f11",
	"TOKEN_BODY": `tokbody-"q"&<x>-3c`,
	"CMD_ARG":    "cmdarg-a1b2c3d4e5",
	"CMD_ENV":    "cmdenv-f6e5d4c3b2",
	"HOOK_PATH":  "hookpath-0a9b8c7d",
	"HOOK_TOKEN": "hooktok-1122334455",
}

const (
	secretRedisPW   = "redispw-9988776655"
	secretHTTPToken = "httptok-ffeeddccbb"
)

// leaks reports which secrets text holds, in any of the forms they take
// in URLs and JSON.
func leaks(text string, secrets []string) []string {
	var found []string
	for _, s := range secrets {
		q, _ := json.Marshal(s)
		var zb bytes.Buffer
		enc := json.NewEncoder(&zb)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		forms := []string{s, url.QueryEscape(s), url.PathEscape(s), string(q[1 : len(q)-1]), strings.Trim(strings.TrimSpace(zb.String()), `"`)}
		for _, f := range forms {
			if strings.Contains(text, f) {
				found = append(found, f)
				break
			}
		}
	}
	return found
}

func TestSecretsStayIn(t *testing.T) {
	bin := buildRedcron(t)
	dir := t.TempDir()
	rs := redistest.Start(t, redistest.Options{Password: secretRedisPW})

	// The HTTP job's target answers 500 and echoes the request, secrets
	// included, as a careless API would.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "you sent %s %s with %s and %s\n", r.Method, r.URL, r.Header.Get("Authorization"), b)
	}))
	t.Cleanup(echo.Close)
	// The webhook keeps what it receives.
	var hookMu sync.Mutex
	var hooks, hookAuth []string // bodies; paths and Authorization headers
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hooks = append(hooks, string(b))
		hookAuth = append(hookAuth, r.URL.Path+" "+r.Header.Get("Authorization"))
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)

	config := filepath.Join(dir, "jobs.yaml")
	src := fmt.Sprintf(secretsConfig, strings.TrimPrefix(echo.URL, "http://"), strings.TrimPrefix(hook.URL, "http://"))
	if err := os.WriteFile(config, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "redis.pw"), []byte(secretRedisPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"REDIS_URL=redis://" + rs.Addr() + "/0", "REDCRON_HTTP_TOKEN=" + secretHTTPToken}
	secrets := []string{secretRedisPW, secretHTTPToken}
	for k, v := range secretValues {
		env = append(env, k+"="+v)
		secrets = append(secrets, v)
	}
	check := func(what, text string) {
		t.Helper()
		if found := leaks(text, secrets); len(found) > 0 {
			t.Errorf("%s shows %q:\n%s", what, found, text)
		}
	}
	// runCtl runs a command of the binary with the test's environment.
	runCtl := func(args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(e2eEnv(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}

	// validate shows the config as written: the ${VAR}s, not the values.
	code, out, errOut := runCtl("validate", "--config", config)
	if code != exitOK {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	check("validate's output", out+errOut)
	for _, want := range []string{"http://" + strings.TrimPrefix(echo.URL, "http://") + "/echo?token=${TOKEN_URL}", "sh -c", "${CMD_ARG}"} {
		if !strings.Contains(out, want) {
			t.Errorf("validate's output lacks %q:\n%s", want, out)
		}
	}

	// A bad --redis URL does not echo its password.
	for _, bad := range []string{"redis://:" + secretRedisPW + "@127.0.0.1:xx/0", "redis://u:" + secretRedisPW + "%zz@127.0.0.1:6379/0"} {
		code, out, errOut := runCtl("run", "--config", config, "--redis", bad, "--http", "off")
		if code == exitOK {
			t.Errorf("run --redis %s: exit 0, want a refusal", bad)
		}
		check("run with a bad --redis URL", out+errOut)
		code, out, errOut = runCtl("status", "--config", config, "--redis", bad)
		if code == exitOK {
			t.Errorf("status --redis %s: exit 0, want a refusal", bad)
		}
		check("status with a bad --redis URL", out+errOut)
	}

	// The replica, at debug level, with reads behind the token.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	logPath := filepath.Join(dir, "replica.log")
	p := startRedcronEnv(t, bin, "r1", logPath, append(env, "REDCRON_HTTP_READ_AUTH=1"),
		"run", "--config", config, "--replica", "r1", "--http", addr, "--log-level", "debug")
	p.waitLog(t, "redcron started", e2eStartTimeout)

	// Wait for failures of every job, and their notifications.
	c := rs.Client(t)
	eventually(t, 20*time.Second, "two failed records of each job and notifications", func() bool {
		for _, job := range []string{"call-api", "call-down", "shell"} {
			n, err := c.ZCard(context.Background(), store.JobKeys("sec", job).History()).Result()
			if err != nil || n < 2 {
				return false
			}
		}
		hookMu.Lock()
		defer hookMu.Unlock()
		return len(hooks) >= 3
	})

	// The API, the page and /metrics, with the token (reads need it).
	get := func(path, token, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/", "/api/status", "/api/jobs", "/api/jobs/call-api", "/api/jobs/call-api/history",
		"/api/jobs/call-down/history", "/api/jobs/shell/history", "/api/replicas", "/metrics"} {
		code, body := get(path, secretHTTPToken, "")
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
		check("GET "+path, body)
	}
	for _, path := range []string{"/api/status", "/api/jobs/shell/history", "/metrics"} {
		if code, body := get(path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401: %s", path, code, body)
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		if code, body := get(path, "", ""); code != http.StatusOK {
			t.Errorf("GET %s without the token: %d, want 200: %s", path, code, body)
		}
	}
	if code, _ := get("/api/status", secretHTTPToken, "rebound.example:80"); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/status with Host rebound.example: %d, want 421", code)
	}
	_, hist := get("/api/jobs/call-down/history", secretHTTPToken, "")
	if !strings.Contains(hist, "token=${TOKEN_URL}") {
		t.Errorf("call-down's history: want its error to name ${TOKEN_URL}:\n%s", hist)
	}

	// The ledger, as the CLI shows it, and every key in Redis.
	for _, job := range []string{"call-api", "call-down", "shell"} {
		code, out, errOut := runCtl("history", job, "--config", config, "--json", "--limit", "50")
		if code != exitOK {
			t.Errorf("history %s: exit %d %s", job, code, errOut)
		}
		check("history "+job, out+errOut)
		var recs []store.Record
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Errorf("history %s --json: %v", job, err)
		}
		_, out, errOut = runCtl("history", job, "--config", config)
		check("history "+job+" (table)", out+errOut)
	}
	_, out, errOut = runCtl("status", "--config", config, "--json")
	check("status --json", out+errOut)
	_, hist = get("/api/jobs/shell/history", secretHTTPToken, "")
	for _, withheld := range []string{"TOKEN_URL=", "TOKEN_HDR=", "HOOK_TOKEN=", "REDCRON_HTTP_TOKEN=", "REDIS_URL="} {
		if strings.Contains(hist, withheld) {
			t.Errorf("the command's environment holds %s (a variable the config names, or the replica's own)", withheld)
		}
	}
	if !strings.Contains(hist, "API_KEY=${CMD_ENV}") || !strings.Contains(hist, "argv: ${CMD_ARG}") {
		t.Errorf("shell's history: want its output to show API_KEY=${CMD_ENV} and argv: ${CMD_ARG}:\n%s", hist)
	}
	check("Redis", dumpRedis(t, c))

	// Notifications: the bodies carry no secret; the requests carry the
	// webhook's own, as they must.
	hookMu.Lock()
	all, auth := strings.Join(hooks, "\n"), hookAuth[0]
	hookMu.Unlock()
	check("the notification bodies", all)
	if !strings.Contains(all, "${TOKEN_URL}") {
		t.Errorf("notifications: want a record naming ${TOKEN_URL}:\n%s", all)
	}
	if want := "/hook/" + secretValues["HOOK_PATH"] + " Bearer " + secretValues["HOOK_TOKEN"]; auth != want {
		t.Errorf("the webhook got %q, want %q", auth, want)
	}

	// SIGTERM, then the whole log.
	p.signal(t, syscall.SIGTERM)
	if !p.wait(e2eExitMargin + 2*time.Second) {
		t.Fatal("the replica did not exit after SIGTERM")
	}
	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	check("the replica's log", string(logs))
	for _, want := range []string{`"level":"debug"`, "${TOKEN_URL}", "${CMD_ARG}"} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("the replica's log lacks %s", want)
		}
	}
	for line := range bytes.Lines(logs) {
		if len(bytes.TrimSpace(line)) > 0 && !json.Valid(line) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// dumpRedis is every key and value the replicas left in Redis, as text.
func dumpRedis(t *testing.T, c *redis.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "zset":
			v, err = c.ZRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		default:
			v = "(" + typ + ")"
		}
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		fmt.Fprintf(&b, "%s: %v\n", k, v)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
