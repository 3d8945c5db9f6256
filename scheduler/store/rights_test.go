package store

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/internal/redistest"
)

// TestCheckRights: on a real redis-server, users whose rules lack what the
// scripts call are refused with ErrACL and the missing commands named (the
// ring's commands, as for a user set up before them; every keyed command
// when the key pattern is another prefix's; PUBLISH when the channels are
// not granted; EVALSHA itself), the README's rules pass and leave no key
// behind, and an unreachable server is an error without ErrACL.
func TestCheckRights(t *testing.T) {
	t.Parallel()
	const prefix = "rc"
	srv := redistest.Start(t, redistest.Options{Password: "admin-pw"})
	admin := srv.Client(t)
	ctx := context.Background()
	without := func(drop ...string) []string {
		var out []string
		for _, r := range ACLRules(prefix) {
			if !slices.Contains(drop, r) {
				out = append(out, r)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		rules []string
		named []string // commands the error must name; nil: no error
		not   []string // commands it must not name
	}{
		{"the README's rules", ACLRules(prefix), nil, nil},
		{"set up before the ring", without("+setbit", "+getbit", "+getrange", "+setrange"),
			[]string{"setbit", "getbit", "getrange", "setrange", "+setbit +getbit +getrange +setrange"}, []string{"get,", "hset", "publish"}},
		{"without zadd", without("+zadd"), []string{"zadd"}, []string{"setbit", "hset"}},
		{"another prefix's keys", append(without("~"+prefix+":*"), "~other:*"),
			[]string{"keys", "rc:*"}, []string{"time", "publish"}},
		{"no channels", without("&" + prefix + ":*"), []string{"publish", "&rc:*"}, []string{"get,", "hset", "+publish"}},
		{"no scripts", without("+evalsha", "+eval"), []string{"evalsha"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := "u" + strings.ReplaceAll(tc.name, " ", "")
			args := append([]any{"acl", "setuser", user, "reset", "on", ">pw"}, anySlice(tc.rules)...)
			if err := admin.Do(ctx, args...).Err(); err != nil {
				t.Fatalf("ACL SETUSER: %v", err)
			}
			c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: "pw", DisableIdentity: true})
			t.Cleanup(func() { _ = c.Close() })
			err := CheckRights(ctx, c, prefix)
			if tc.named == nil {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if keys := admin.Keys(ctx, "*").Val(); len(keys) != 0 {
					t.Errorf("keys left behind: got %q, want none", keys)
				}
				return
			}
			if !errors.Is(err, ErrACL) {
				t.Fatalf("got %v, want ErrACL", err)
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, n := range tc.named {
				if !regexp.MustCompile(`(^|[^a-z])` + regexp.QuoteMeta(n) + `([^a-z]|$)`).MatchString(msg) {
					t.Errorf("error %q: does not name %s", msg, n)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(msg, " "+n) {
					t.Errorf("error %q: names %s, which the user may run", msg, n)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there now
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		err = CheckRights(ctx, c, prefix)
		if err == nil || errors.Is(err, ErrACL) {
			t.Fatalf("got %v, want an error without ErrACL", err)
		}
	})
	t.Run("embedded server", func(t *testing.T) {
		e, err := embedredis.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		c := redis.NewClient(&redis.Options{Addr: e.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		if err := CheckRights(ctx, c, prefix); err != nil {
			t.Fatalf("got %v, want nil", err)
		}
	})
}

// TestRightsCoverScripts: CheckRights tries every command that a Lua
// script of the locker or of this package calls, and no other (a command
// with a fallback, such as MGET, must not fail a start), and each is in
// ACLCommands.
func TestRightsCoverScripts(t *testing.T) {
	probed := map[string]bool{}
	for _, call := range rightsCalls {
		probed[strings.ToLower(call[0])] = true
		if !slices.Contains(ACLCommands, strings.ToLower(call[0])) {
			t.Errorf("CheckRights tries %s, which ACLCommands lacks", call[0])
		}
	}
	files, err := filepath.Glob("../../locker/*.lua")
	if err != nil {
		t.Fatal(err)
	}
	own, err := filepath.Glob("*.lua")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`redis\.p?call\("([A-Za-z]+)"`)
	seen, called := 0, map[string]bool{}
	for _, f := range append(files, own...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			seen++
			c := strings.ToLower(m[1])
			called[c] = true
			if !probed[c] {
				t.Errorf("%s calls %s: got it untried by CheckRights, want it tried", f, c)
			}
		}
	}
	for c := range probed {
		if !called[c] {
			t.Errorf("CheckRights tries %s, which no script calls: got a start check for a command the scripts do not need, want none", c)
		}
	}
	if seen < 50 {
		t.Fatalf("got %d calls in the scripts, want the scripts found (at least 50)", seen)
	}
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
