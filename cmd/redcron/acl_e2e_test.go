package main

// TestLeastPrivilegeACL: two replicas of the built binary and the control
// commands run as a Redis ACL user with exactly store.ACLRules, the rules
// the README prints: jobs run (one of them with overlap: replace, so
// pub/sub is used too), status, history, replicas, pause, resume and
// trigger --wait work, Redis refused nothing but CONFIG, which the
// replicas turn into one warning, and the user cannot touch a key or a
// channel outside the prefix, directly or from a script (Redis checks
// each key a script's redis.call touches, whether or not the script
// declared it in KEYS).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/scheduler/store"
)

// The ACL tests' key prefix and Redis user.
const (
	aclPrefix = "acl"
	aclUser   = "redcron"
	aclPass   = "cron-pw"
)

// aclServer starts a redis-server with an ACL user that has exactly rules
// (the default user keeps every right, behind a password) and returns it
// and the user's URL.
func aclServer(t *testing.T, rules []string) (*redistest.Server, string) {
	t.Helper()
	args := append([]string{"--user", aclUser, "on", ">" + aclPass}, rules...)
	srv := redistest.Start(t, redistest.Options{Password: "admin-pw", Args: args})
	return srv, fmt.Sprintf("redis://%s:%s@%s/0", aclUser, aclPass, srv.Addr())
}

func TestLeastPrivilegeACL(t *testing.T) {
	bin := buildRedcron(t)
	srv, url := aclServer(t, store.ACLRules(aclPrefix))
	admin := srv.Client(t) // the default user, with every right
	ctx := context.Background()

	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	config := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`redis: {prefix: %s}
shutdown_grace: 2s
defaults: {lock_ttl: 3s, kill_grace: 1s}
jobs:
  tick:
    schedule: "* * * * * *"
    command: ["sh", "-c", "echo tick $REDCRON_SLOT $REDCRON_FENCE $REDCRON_REPLICA >> %s"]
  replaced:
    schedule: "* * * * * *"
    overlap: replace
    command: ["sleep", "3"]
  report:
    schedule: "0 0 1 1 *"
    command: ["true"]
`, aclPrefix, ledger)), 0o600); err != nil {
		t.Fatal(err)
	}
	var reps []*e2eProc
	for _, name := range []string{"a", "b"} {
		p := startReplica(t, bin, config, url, name, filepath.Join(dir, name+".log"))
		p.waitLog(t, "redcron started", e2eStartTimeout)
		reps = append(reps, p)
	}

	eventually(t, 10*time.Second, "tick runs and a replaced run", func() bool {
		b, _ := os.ReadFile(ledger)
		replaced := false
		for _, r := range historyOf(t, bin, config, url, "replaced") {
			replaced = replaced || r.Reason == store.ReasonReplaced
		}
		return strings.Count(string(b), "\n") >= 3 && replaced
	})
	snap := statusOf(t, bin, config, url)
	if last := jobIn(snap, "tick").Last; len(snap.Replicas) != 2 || last == nil || last.Outcome != store.OutcomeOK {
		t.Errorf("status: got %d replicas and tick's last record %+v, want 2 and an ok run", len(snap.Replicas), last)
	}
	for _, c := range [][]string{
		{"replicas", "--json"},
		{"pause", "tick", "--note", "acl"},
		{"resume", "tick"},
		{"trigger", "report", "--wait", "--json"},
	} {
		if code, out := ctl(t, bin, config, url, c...); code != exitOK {
			t.Errorf("redcron %s: exit %d, want 0:\n%s", strings.Join(c, " "), code, out)
		}
	}

	for _, p := range reps {
		p.signal(t, syscall.SIGTERM)
		if !p.wait(10 * time.Second) {
			t.Fatalf("%s did not exit after SIGTERM", p.name)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s: exit %d, want 0; log:\n%s", p.name, code, tail(p.log))
		}
		warned := 0
		for _, l := range readLogs(t, p.log) {
			if strings.HasPrefix(l.Message, "cannot read Redis settings") {
				warned++
			}
		}
		if warned != 1 {
			t.Errorf("%s: %d warnings that settings cannot be read, want 1 (CONFIG is not granted)", p.name, warned)
		}
	}

	// Everything Redis refused the user, from ACL LOG: CONFIG only.
	entries, err := admin.Do(ctx, "acl", "log").Slice()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fields := aclEntry(e)
		if fields["reason"] == "command" && (fields["object"] == "config|get" || fields["object"] == "client|setinfo") {
			continue
		}
		t.Errorf("Redis refused the ACL user: %v", fields)
	}

	// Outside the prefix, nothing: a key, a key a script declares or does
	// not declare, a channel.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: aclUser, Password: aclPass, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"SET other:x", c.Set(ctx, "other:x", 1, 0).Err()},
		{"GET other:x", c.Get(ctx, "other:x").Err()},
		{"EVAL declaring other:x", c.Eval(ctx, "return redis.call('SET', KEYS[1], 1)", []string{"other:x"}).Err()},
		{"EVAL not declaring other:x", c.Eval(ctx, "return redis.call('SET', 'other:x', 1)", nil).Err()},
		{"EVAL declaring acl:x, writing other:x", c.Eval(ctx, "return redis.call('SET', 'other:x', 1)", []string{aclPrefix + ":x"}).Err()},
		{"PUBLISH other:events", c.Publish(ctx, "other:events", "x").Err()},
		{"FLUSHALL", c.FlushAll(ctx).Err()},
		{"KEYS *", c.Keys(ctx, "*").Err()},
	} {
		// Redis checks every key a script's redis.call touches, declared in
		// KEYS or not: a script gets its own refusal.
		if tc.err == nil || !strings.Contains(tc.err.Error(), "NOPERM") && !strings.Contains(tc.err.Error(), "can't access at least one of the keys") {
			t.Errorf("%s as the ACL user: got %v, want a refusal by the ACL", tc.name, tc.err)
		}
	}
	if err := c.Set(ctx, aclPrefix+":x", 1, time.Minute).Err(); err != nil {
		t.Errorf("SET %s:x as the ACL user: %v", aclPrefix, err)
	}
	if n, _ := admin.Exists(ctx, "other:x").Result(); n != 0 {
		t.Errorf("other:x exists: a refused write went through")
	}
}

// aclEntry turns one ACL LOG entry (a flat list of field, value) into a map.
func aclEntry(e any) map[string]any {
	m := map[string]any{}
	switch v := e.(type) {
	case []any:
		for i := 0; i+1 < len(v); i += 2 {
			m[fmt.Sprint(v[i])] = v[i+1]
		}
	case map[any]any:
		for k, x := range v {
			m[fmt.Sprint(k)] = x
		}
	}
	return m
}

// TestACLMissingCommands: a replica whose ACL user was set up before the
// ring's commands joined the rules (no +setbit +getbit +getrange
// +setrange) does not start: it exits 1 at once, its log says it cannot
// start (and never that it started), names the four commands and the ACL SETUSER that adds them, no job ran and nothing is
// left under the prefix. Without the check at start every claim failed
// with an error that names no command, and the replica ran on.
func TestACLMissingCommands(t *testing.T) {
	bin := buildRedcron(t)
	var rules []string
	for _, r := range store.ACLRules(aclPrefix) {
		switch r {
		case "+setbit", "+getbit", "+getrange", "+setrange":
		default:
			rules = append(rules, r)
		}
	}
	srv, url := aclServer(t, rules)
	admin := srv.Client(t)

	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	config := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`redis: {prefix: %s}
jobs:
  tick:
    schedule: "* * * * * *"
    command: ["sh", "-c", "echo tick >> %s"]
`, aclPrefix, ledger)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startReplica(t, bin, config, url, "a", filepath.Join(dir, "a.log"))
	if !p.wait(e2eStartTimeout) {
		t.Fatalf("the replica still runs after %v, want it to exit at start; log:\n%s", e2eStartTimeout, tail(p.log))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Errorf("exit %d, want %d", code, exitFailure)
	}
	log := tail(p.log)
	for _, want := range []string{"redcron cannot start", "setbit, getbit, getrange, setrange", "ACL SETUSER <user> +setbit +getbit +getrange +setrange"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "redcron started") {
		t.Errorf("log says %q before the check at start refused it:\n%s", "redcron started", log)
	}
	if _, err := os.Stat(ledger); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ledger: got %v, want no job run", err)
	}
	if keys := admin.Keys(context.Background(), aclPrefix+":*").Val(); len(keys) != 0 {
		t.Errorf("keys under the prefix: got %q, want none", keys)
	}
}

// TestACLChangedWhileRunning: a replica that started with every right
// meets an ACL user who lost SETBIT while it runs: every claim then fails
// with Redis's refusal inside a script, which names no command, after the
// script took the lease (Redis does not undo a script's writes before an
// error). Its log gets an error naming setbit and the ACL SETUSER that
// gives it back; nothing runs meanwhile; once the right is back runs
// resume at once, not after the lease's TTL (the claim's next attempt
// takes the lease its cut-short attempt left), and every slot from the
// first run to the last is on record once: run, or skipped.
func TestACLChangedWhileRunning(t *testing.T) {
	bin := buildRedcron(t)
	srv, url := aclServer(t, store.ACLRules(aclPrefix))
	admin := srv.Client(t)
	ctx := context.Background()

	dir := t.TempDir()
	ledger := filepath.Join(dir, "ledger")
	config := filepath.Join(dir, "jobs.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`redis: {prefix: %s, max_clock_skew: 200ms}
shutdown_grace: 2s
defaults: {catchup_window: 1s}
jobs:
  tick:
    schedule: "* * * * * *"
    command: ["sh", "-c", "echo $REDCRON_SLOT >> %s"]
`, aclPrefix, ledger)), 0o600); err != nil {
		t.Fatal(err)
	}
	runs := func() []string {
		b, _ := os.ReadFile(ledger)
		return strings.Fields(string(b))
	}
	p := startReplica(t, bin, config, url, "a", filepath.Join(dir, "a.log"))
	p.waitLog(t, "redcron started", e2eStartTimeout)
	eventually(t, 10*time.Second, "a first run", func() bool { return len(runs()) >= 1 })

	if err := admin.Do(ctx, "acl", "setuser", aclUser, "-setbit").Err(); err != nil {
		t.Fatal(err)
	}
	const refused = "the Redis user may no longer run what the scripts call: claims and records fail until it may"
	p.waitLog(t, refused, 10*time.Second)
	var named bool
	for _, l := range readLogs(t, p.log) {
		if l.Message == refused {
			named = l.Level == "error" && strings.Contains(l.Error, "may not run setbit") &&
				strings.Contains(l.Error, "ACL SETUSER <user> +setbit")
			break
		}
	}
	if !named {
		t.Errorf("the error line does not name setbit and its ACL SETUSER; log:\n%s", tail(p.log))
	}
	// Three slots pass without the right: none runs (a run in flight may
	// still be written).
	before := len(runs())
	time.Sleep(3 * time.Second)
	if n := len(runs()); n > before+1 {
		t.Errorf("runs while the user may not run setbit: got %d, want at most 1 (in flight)", n-before)
	}

	if err := admin.Do(ctx, "acl", "setuser", aclUser, "+setbit").Err(); err != nil {
		t.Fatal(err)
	}
	back := len(runs())
	eventually(t, 5*time.Second, "runs after the right is back", func() bool { return len(runs()) >= back+2 })

	// Every slot from the first run to the first after the right came back
	// is on record once: run, or skipped (written once nobody may claim it,
	// a catch-up window and the clock skew after the slot).
	ran := runs()
	first, err1 := time.Parse(time.RFC3339, ran[0])
	last, err2 := time.Parse(time.RFC3339, ran[back])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("ledger %q: %v", ran, err)
	}
	var bySlot map[time.Time][]string
	recorded := func() bool {
		bySlot = map[time.Time][]string{}
		for _, r := range historyOf(t, bin, config, url, "tick") {
			bySlot[r.Slot.UTC()] = append(bySlot[r.Slot.UTC()], r.Outcome+" "+r.Reason)
		}
		for s := first; !s.After(last); s = s.Add(time.Second) {
			if len(bySlot[s]) == 0 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(15 * time.Second)
	for !recorded() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	for s := first; !s.After(last); s = s.Add(time.Second) {
		if len(bySlot[s]) != 1 {
			t.Errorf("slot %s: got records %q, want one; log:\n%s", s.Format(time.TimeOnly), bySlot[s], tail(p.log))
		}
	}

	p.signal(t, syscall.SIGTERM)
	if !p.wait(10 * time.Second) {
		t.Fatalf("%s did not exit after SIGTERM", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0; log:\n%s", code, tail(p.log))
	}
}
