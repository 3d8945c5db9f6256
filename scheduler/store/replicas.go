package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

// Replica is one live replica as it registers itself (its heartbeat).
type Replica struct {
	Replica    string    `json:"replica"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	ConfigHash string    `json:"config_hash"`
	HTTP       string    `json:"http"`
	// Jobs maps each job the replica defines to its definition's
	// fingerprint (jobs.Job.Fingerprint).
	Jobs map[string]string `json:"jobs,omitempty"`
}

// replicasKey is the index of live replicas: a sorted set of replica ids
// scored by the expiry (ms) of their heartbeat.
func (s *Store) replicasKey() string { return s.prefix + ":replicas" }

// replicaKey holds one replica's registration (JSON), with a TTL.
func (s *Store) replicaKey(id string) string { return s.prefix + ":replica:" + id }

// Heartbeat registers r as live for ttl on every node (a majority must
// confirm), and drops expired entries from the index.
func (s *Store) Heartbeat(ctx context.Context, r Replica, ttl time.Duration) error {
	b, _ := json.Marshal(r)
	idx, key := s.replicasKey(), s.replicaKey(r.Replica)
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		now := time.Now()
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, "set", key, string(b), "px", ttl.Milliseconds()))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zadd", idx, now.Add(ttl).UnixMilli(), r.Replica))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zremrangebyscore", idx, "-inf", strconv.FormatInt(now.UnixMilli(), 10)))
		_ = pipe.Process(ctx, redis.NewBoolCmd(ctx, "pexpire", idx, (3*ttl).Milliseconds()))
		_, err := pipe.Exec(ctx)
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", r.Replica, err)
	}
	return nil
}

// Unregister removes replica id (at shutdown); best effort.
func (s *Store) Unregister(ctx context.Context, id string) error {
	idx, key := s.replicasKey(), s.replicaKey(id)
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "del", key))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zrem", idx, id))
		_, err := pipe.Exec(ctx)
		return struct{}{}, err
	})
	return err
}

// Replicas lists the live replicas (those whose registration has not
// expired), by id: the union of what the nodes that answered hold.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	idx := s.replicasKey()
	lists, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) ([]Replica, error) {
		ids := redis.NewStringSliceCmd(ctx, "zrangebyscore", idx, strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf")
		if err := c.Process(ctx, ids); err != nil {
			return nil, err
		}
		pipe := c.Pipeline()
		gets := make([]*redis.StringCmd, len(ids.Val()))
		for i, id := range ids.Val() {
			gets[i] = redis.NewStringCmd(ctx, "get", s.replicaKey(id))
			_ = pipe.Process(ctx, gets[i])
		}
		if len(gets) > 0 {
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
		}
		var out []Replica
		for _, g := range gets {
			var r Replica
			if g.Err() == nil && json.Unmarshal([]byte(g.Val()), &r) == nil {
				out = append(out, r)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: replicas: %w", err)
	}
	byID := map[string]Replica{}
	for _, l := range lists {
		for _, r := range l {
			byID[r.Replica] = r
		}
	}
	out := make([]Replica, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Replica) int {
		switch {
		case a.Replica < b.Replica:
			return -1
		case a.Replica > b.Replica:
			return 1
		}
		return 0
	})
	return out, nil
}

// Drift is, for each job defined on some live replica, whether the live
// replicas disagree on it: different fingerprints, or defined on some and
// not on others. A single replica never drifts.
func Drift(rs []Replica) map[string]bool {
	defs := map[string]map[string]bool{} // job -> fingerprints seen
	count := map[string]int{}
	for _, r := range rs {
		for job, fp := range r.Jobs {
			if defs[job] == nil {
				defs[job] = map[string]bool{}
			}
			defs[job][fp] = true
			count[job]++
		}
	}
	out := map[string]bool{}
	for job, fps := range defs {
		out[job] = len(fps) > 1 || count[job] < len(rs)
	}
	return out
}
