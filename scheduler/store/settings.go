package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

// SettingsReport is what CheckSettings found on one Redis node.
type SettingsReport struct {
	// Warnings name each setting that weakens a guarantee, and how.
	Warnings []string
	// Unknown is set when the settings could not be read (CONFIG refused,
	// as on managed Redis): nothing could be checked.
	Unknown error
}

// CheckSettings reads the settings the guarantees need (DESIGN "Redis
// settings the guarantees need") from one node with CONFIG GET:
//   - maxmemory-policy must be noeviction: every other policy may evict the
//     keys that carry a TTL (volatile-*) or any key (allkeys-*), so marks,
//     leases, history and even the job's meta hash (fence, high-water
//     slot) could be forgotten under memory pressure;
//   - appendonly yes with appendfsync always: otherwise a crash loses the
//     latest fences and high-water slots, and a slot may run twice or a
//     fence go back.
//
// A refused CONFIG is reported in Unknown, not as an error: the replica
// warns once and goes on.
func CheckSettings(ctx context.Context, c locker.Client) SettingsReport {
	cmd := redis.NewMapStringStringCmd(ctx, "config", "get", "maxmemory-policy")
	aof := redis.NewMapStringStringCmd(ctx, "config", "get", "appendonly")
	fsync := redis.NewMapStringStringCmd(ctx, "config", "get", "appendfsync")
	var rep SettingsReport
	for _, x := range []*redis.MapStringStringCmd{cmd, aof, fsync} {
		if err := c.Process(ctx, x); err != nil {
			rep.Unknown = fmt.Errorf("CONFIG GET refused or failed: %w", err)
			return rep
		}
	}
	if p := cmd.Val()["maxmemory-policy"]; p != "" && p != "noeviction" {
		what := "keys with a TTL (marks, leases, history)"
		if strings.HasPrefix(p, "allkeys-") {
			what = "any key, the jobs' fences and high-water slots included"
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("maxmemory-policy is %s: under memory pressure Redis evicts %s; use noeviction", p, what))
	}
	switch {
	case aof.Val()["appendonly"] != "yes":
		rep.Warnings = append(rep.Warnings, "appendonly is no: a Redis crash or restart loses the fences and high-water slots; use appendonly yes with appendfsync always")
	case fsync.Val()["appendfsync"] != "always":
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("appendfsync is %s: a Redis crash loses the last writes, fences and high-water slots included; use appendfsync always", fsync.Val()["appendfsync"]))
	}
	return rep
}
