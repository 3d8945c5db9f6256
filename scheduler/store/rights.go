package store

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

var (
	//go:embed rights.lua
	rightsLua string
	// rightsScript is CheckRights's probe.
	rightsScript = redis.NewScript(rightsLua)
)

// rightsCalls are CheckRights's calls, one or more for each command that
// redcron's Lua scripts call (locker's and this package's), with "s", "h",
// "z" and "c" standing for the probe's string, hash, sorted set and
// channel. The hash and the sorted set get a TTL at once, in case DEL is
// the command refused.
var rightsCalls = [][]string{
	{"TIME"},
	{"SET", "s", "1", "PX", "10000"}, {"GET", "s"}, {"EXISTS", "s"}, {"PEXPIRE", "s", "10000"}, {"PTTL", "s"},
	{"SETBIT", "s", "0", "1"}, {"GETBIT", "s", "0"}, {"GETRANGE", "s", "0", "0"}, {"SETRANGE", "s", "0", "x"},
	{"HSET", "h", "f", "1"}, {"PEXPIRE", "h", "10000"}, {"HGET", "h", "f"}, {"HMGET", "h", "f"},
	{"HINCRBY", "h", "f", "1"}, {"HGETALL", "h"}, {"HDEL", "h", "f"},
	{"ZADD", "z", "1", "m"}, {"PEXPIRE", "z", "10000"}, {"ZRANGE", "z", "0", "-1"}, {"ZRANGEBYSCORE", "z", "0", "1"},
	{"ZREM", "z", "m"}, {"ZREMRANGEBYRANK", "z", "0", "-1"}, {"ZREMRANGEBYSCORE", "z", "0", "1"},
	{"PUBLISH", "c", "rights"},
	{"DEL", "s"},
}

// CheckRights tries, in one script on keys and a channel of its own under
// prefix (P:{rights}:..., deleted before it returns), every command that
// redcron's Lua scripts call. It returns an error wrapping ErrACL that
// names the commands the connection's ACL user may not run there (or whose
// keys or channel it may not touch), since Redis's refusal inside a script
// does not name them; nil when it may run them all. Any other failure (an
// unreachable server, a timeout, a server without a command) is returned
// as it is, without ErrACL.
func CheckRights(ctx context.Context, c locker.Client, prefix string) error {
	name := map[string]string{
		"s": prefix + ":{rights}:string",
		"h": prefix + ":{rights}:hash",
		"z": prefix + ":{rights}:zset",
		"c": prefix + ":{rights}:events",
	}
	keys := []any{name["s"], name["h"], name["z"]}
	var args []any
	for _, call := range rightsCalls {
		args = append(args, len(call))
		for _, w := range call {
			if v, ok := name[w]; ok {
				w = v
			}
			args = append(args, w)
		}
	}
	v, err := evalScript(ctx, c, rightsScript, rightsLua, keys, args)
	if err != nil {
		if redis.HasErrorPrefix(err, "NOPERM") {
			return fmt.Errorf("%w: %w; the user needs the keys %s:*, the channels %s:* and the commands of README \"ACL\"", ErrACL, err, prefix, prefix)
		}
		return fmt.Errorf("store: checking the redis user's rights: %w", err)
	}
	failed, _ := v.([]any)
	var refused, rules, other []string
	var why string
	for i := 0; i+1 < len(failed); i += 2 {
		cmd, _ := failed[i].(string)
		msg, _ := failed[i+1].(string)
		cmd = strings.ToLower(cmd)
		if !aclRefusal(msg) {
			other = append(other, cmd+": "+msg)
			continue
		}
		rule := "+" + cmd
		switch {
		case refusesChannel(msg):
			rule = "&" + prefix + ":*"
		case refusesKey(msg):
			rule = "~" + prefix + ":*"
		}
		if !slices.Contains(refused, cmd) {
			refused = append(refused, cmd)
		}
		if !slices.Contains(rules, rule) {
			rules = append(rules, rule)
		}
		why = msg
	}
	if len(refused) > 0 {
		return fmt.Errorf("%w: the user may not run %s from redcron's scripts (Redis: %q); add to it: ACL SETUSER <user> %s (README \"ACL\" has every rule)",
			ErrACL, strings.Join(refused, ", "), why, strings.Join(rules, " "))
	}
	if len(other) > 0 {
		return fmt.Errorf("store: checking the redis user's rights: %s", strings.Join(other, "; "))
	}
	return nil
}

// ACLRefused says whether err carries Redis's refusal by the ACL: of a
// command inside a script (which names no command: CheckRights names
// them) or of a top-level command (NOPERM).
func ACLRefused(err error) bool {
	return err != nil && aclRefusal(err.Error())
}

// aclRefusal says whether msg, an error a script's redis.pcall returned,
// is the ACL's refusal: Redis 6.2 and 7.0 say "The user executing the
// script can't ...", 7.2 and later "ACL failure in script: ...".
func aclRefusal(msg string) bool {
	return strings.Contains(msg, "The user executing the script can't") ||
		strings.Contains(msg, "ACL failure in script") || strings.Contains(msg, "NOPERM")
}

// refusesKey and refusesChannel say whether an ACL refusal is for a key or
// a channel rather than the command, by Redis's phrases (6.2 to 7.x; a
// user's name, which 7.2 quotes, cannot match them).
func refusesKey(msg string) bool {
	return strings.Contains(msg, "keys mentioned") || strings.Contains(msg, "one of the keys") ||
		strings.Contains(msg, "access a key")
}

func refusesChannel(msg string) bool {
	return strings.Contains(msg, "channel mentioned") || strings.Contains(msg, "publish to the channel") ||
		strings.Contains(msg, "access a channel")
}

// evalScript runs script with keys and args by its digest, and by its
// source when the server does not have it (NOSCRIPT: after a restart or
// SCRIPT FLUSH).
func evalScript(ctx context.Context, c locker.Client, script *redis.Script, src string, keys, args []any) (any, error) {
	head := append([]any{"evalsha", script.Hash(), len(keys)}, keys...)
	cmd := redis.NewCmd(ctx, append(head, args...)...)
	err := c.Process(ctx, cmd)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		head = append([]any{"eval", src, len(keys)}, keys...)
		cmd = redis.NewCmd(ctx, append(head, args...)...)
		err = c.Process(ctx, cmd)
	}
	return cmd.Val(), err
}
