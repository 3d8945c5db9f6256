package jobs

import (
	"fmt"
	"strings"
	"testing"
)

// TestUnknownKeyLists: the "known:" lists, derived from the key tables,
// are complete and sorted.
func TestUnknownKeyLists(t *testing.T) {
	job := "jobs:\n  a: {schedule: '@hourly', func: test.noargs}\n"
	tests := []struct {
		name, src, want string
	}{
		{"top level", "jobz: 1\n" + job, "test.yaml:1: field jobz: unknown key (known: defaults, jobs, redis, shutdown_grace)"},
		{"redis", "redis: {hots: x}\n" + job, "test.yaml:1: field redis.hots: unknown key (known: ack_timeout, batch_scripts, cluster, dial_timeout, max_clock_skew, min_replicas_ack, password, password_file, prefix, quorum, read_timeout, sentinel, tls, url, username, write_timeout)"},
		{"sentinel", "redis: {sentinel: {master: m, addrs: ['h:1'], x: 1}}\n" + job, "test.yaml:1: field redis.sentinel.x: unknown key (known: addrs, master)"},
		{"defaults", "defaults: {lok_ttl: 1s}\n" + job, "test.yaml:1: defaults: field lok_ttl: unknown key (known: args, catchup_window, command, dir, enabled, env, func, history, http, jitter, kill_grace, lock_ttl, notify, output_limit, output_tail, overlap, retry, schedule, timeout, timezone)"},
		{"job", "jobs:\n  a: {schedule: '@hourly', func: test.noargs, schedul: x}\n", "test.yaml:2: job a: field schedul: unknown key (known: args, catchup_window, command, dir, enabled, env, func, history, http, jitter, kill_grace, lock_ttl, notify, output_limit, output_tail, overlap, retry, schedule, timeout, timezone)"},
		{"retry", "jobs:\n  a: {schedule: '@hourly', func: test.noargs, retry: {tries: 2}}\n", "test.yaml:2: job a: field retry.tries: unknown key (known: attempts, backoff, max_backoff)"},
		{"http", "jobs:\n  a: {schedule: '@hourly', http: {url: 'http://h/', verb: GET}}\n", "test.yaml:2: job a: field http.verb: unknown key (known: body, expect, headers, method, timeout, url)"},
		{"notify", "jobs:\n  a: {schedule: '@hourly', func: test.noargs, notify: {webhook: 'http://h/', url: x}}\n", "test.yaml:2: job a: field notify.url: unknown key (known: headers, on, timeout, webhook)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.src, nil)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), &ConfigError{Problems: ps})
			}
			if got := ps[0].Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBlockShapes: the "want a mapping {...}" messages list the keys of
// their table, in its order.
func TestBlockShapes(t *testing.T) {
	tests := []struct {
		name, keys, want string
	}{
		{"retry", "func: test.noargs, retry: 3", "field retry: want a mapping {attempts, backoff, max_backoff}, got"},
		{"http", "http: 3", "field http: want a mapping {url, method, headers, body, expect, timeout}, got"},
		{"notify", "func: test.noargs, notify: [failure]", "field notify: want a mapping {on, webhook, headers, timeout}, got"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, "jobs:\n  a: {schedule: '@hourly', "+tt.keys+"}\n", nil)
			if got := (&ConfigError{Problems: ps}).Error(); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to hold %q", got, tt.want)
			}
		})
	}
	ps := problemsOf(t, "redis: {sentinel: 3}\njobs:\n  a: {schedule: '@hourly', func: test.noargs}\n", nil)
	if got, want := (&ConfigError{Problems: ps}).Error(), "field redis.sentinel: want a mapping {master, addrs}, got"; !strings.Contains(got, want) {
		t.Errorf("got %q, want it to hold %q", got, want)
	}
}

// TestJobKeyTableFilled: numJobKeys is the table's length, so every entry
// of the array has a name and a decoder, and names are unique.
func TestJobKeyTableFilled(t *testing.T) {
	for i, key := range jobKeyTable {
		if key.name == "" || key.decode == nil {
			t.Errorf("entry %d: got name %q (decoder set: %v), want a named key with a decoder: numJobKeys too large?", i, key.name, key.decode != nil)
			continue
		}
		if got := jobKeyIndex(key.name); got != i {
			t.Errorf("jobKeyIndex(%q): got %d, want %d", key.name, got, i)
		}
	}
}

// TestDefaultsAcceptEveryJobKey: the defaults: block takes every key of the
// job key table.
func TestDefaultsAcceptEveryJobKey(t *testing.T) {
	for _, key := range jobKeyTable {
		t.Run(key.name, func(t *testing.T) {
			src := fmt.Sprintf("defaults: {%s: ~}\njobs:\n  a: {schedule: '@hourly', func: test.noargs}\n", key.name)
			cfg, err := Parse("test.yaml", []byte(src), nil)
			if err != nil && strings.Contains(err.Error(), "unknown key") {
				t.Errorf("got %v, want %s accepted in defaults:", err, key.name)
			}
			_ = cfg
		})
	}
}

// TestKindRestrictedKeys: a key that only one kind takes is refused on a
// job of another kind when the job sets it, and (args only) when the
// defaults: block does.
func TestKindRestrictedKeys(t *testing.T) {
	kinds := map[string]string{
		KindFunc:    "func: test.noargs",
		KindCommand: "command: [/bin/true]",
		KindHTTP:    "http: {url: 'http://127.0.0.1:1/'}",
	}
	values := map[string]string{"args": "{}", "env": "{A: b}", "dir": "/tmp", "kill_grace": "1s", "output_limit": "10"}
	for _, key := range restrictedKeys() {
		for kind, decl := range kinds {
			if key.name == "args" && kind == KindFunc {
				continue // test.noargs takes no args: args on func jobs are tested in decode_test.go
			}
			t.Run(key.name+" on "+kind, func(t *testing.T) {
				v := values[key.name]
				src := fmt.Sprintf("jobs:\n  a: {schedule: '@hourly', %s, %s: %s}\n", decl, key.name, v)
				cfg, err := Parse("test.yaml", []byte(src), nil)
				want := fmt.Sprintf("test.yaml:2: job a: field %s: only for %s jobs, this is a %s job", key.name, key.only, kind)
				switch {
				case kind == key.only && err != nil:
					t.Errorf("got %v, want %s accepted on a %s job", err, key.name, kind)
				case kind != key.only && (err == nil || err.Error() != want):
					t.Errorf("got %v (%v), want %q", err, cfg, want)
				}
			})
		}
	}
	t.Run("inherited", func(t *testing.T) {
		ps := problemsOf(t, "defaults: {env: {A: b}, args: {x: 1}}\njobs:\n  a: {schedule: '@hourly', http: {url: 'http://127.0.0.1:1/'}}\n  b: {schedule: '@hourly', http: {url: 'http://127.0.0.1:1/'}, args: ~}\n", nil)
		want := "test.yaml:1: job a: field args: only for func jobs, this is a http job"
		if len(ps) != 1 || ps[0].Error() != want {
			t.Errorf("got %v, want only %q", &ConfigError{Problems: ps}, want)
		}
	})
}
