package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Generation counts the process's registrations: 1 at its start, one
	// more at the first heartbeat after each reload. Of two copies of a
	// registration (quorum mode, a node that missed a heartbeat), the
	// later Started, then the higher Generation, is reported.
	Generation int64 `json:"generation,omitempty"`
	// Jobs maps each job the replica defines to its definition's
	// fingerprint (jobs.Job.Fingerprint).
	Jobs map[string]string `json:"jobs,omitempty"`
}

// Registration is a replica's registration with its encoding, made once
// by NewRegistration: with 100,000 jobs it is megabytes of JSON, which
// each heartbeat used to encode again.
type Registration struct {
	Replica
	raw    string
	digest string   // raw's digest (see registrations)
	jobs   jobsHash // hash of raw's jobs
}

// NewRegistration encodes r.
func NewRegistration(r Replica) Registration {
	b, _ := json.Marshal(r)
	var w wireReplica
	_ = json.Unmarshal(b, &w) // for the jobs as encoded, hashed as a peer's are
	return Registration{Replica: r, raw: string(b), digest: digestOf(b), jobs: sha256.Sum256(w.Jobs)}
}

// digestOf returns the digest of an encoded registration: the first 16
// bytes of its SHA-256, in hex. A replica writes it beside its
// registration, so that the others read the registration (megabytes with
// 100,000 jobs) only when it changed.
func digestOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}

// wireReplica is a registration as read, its jobs left encoded: a replica
// whose jobs are those of a registration already decoded shares that
// one's map without decoding its own.
type wireReplica struct {
	Replica
	Jobs json.RawMessage `json:"jobs,omitempty"` // over Replica.Jobs, a level deeper
}

// jobsHash is the SHA-256 of a registration's encoded jobs: json.Marshal
// writes a map's keys in order, so equal maps hash the same.
type jobsHash = [sha256.Size]byte

// registrations are decoded registrations by replica id, each with the
// digest of the JSON it was decoded from: Replicas reads and decodes a
// registration again only when its digest changed (with 100,000 jobs,
// decoding every live replica's at every heartbeat was most of an idle
// replica's allocations, and reading them 3 MiB a peer a heartbeat).
type registrations struct {
	mu          sync.Mutex
	byID        map[string]decoded
	jobsDecoded int // jobs maps decoded (not shared), for tests
}

// decoded is a registration decoded from JSON whose digest is digest,
// and whose jobs' encoding hashes to jobs.
type decoded struct {
	digest string
	r      Replica
	jobs   jobsHash
}

// cached returns id's registration decoded if its digest is digest (not
// "": no digest).
func (c *registrations) cached(id, digest string) (Replica, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, hit := c.byID[id]; hit && digest != "" && old.digest == digest {
		return old.r, true
	}
	return Replica{}, false
}

// decode returns raw decoded, from the cache when id's registration is
// the same as last time; ok is false when raw is not a registration.
func (c *registrations) decode(id, raw string) (r Replica, ok bool) {
	b := []byte(raw) // one copy, hashed and decoded
	digest := digestOf(b)
	if r, hit := c.cached(id, digest); hit {
		return r, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var w wireReplica
	if json.Unmarshal(b, &w) != nil {
		return Replica{}, false
	}
	r = w.Replica
	// Replicas with one config define the same jobs: they share one map
	// (with 100,000 jobs, a map a replica took 12 MiB on each of them),
	// and only the first is decoded (decoding each peer's at a start was
	// 24 MiB of garbage, by which the collector then let the heap grow).
	jobs := sha256.Sum256(w.Jobs)
	shared := false
	for _, d := range c.byID {
		if d.jobs == jobs {
			r.Jobs, shared = d.r.Jobs, true
			break
		}
	}
	if !shared && len(w.Jobs) > 0 {
		c.jobsDecoded++
		if json.Unmarshal(w.Jobs, &r.Jobs) != nil {
			return Replica{}, false
		}
	}
	c.set(id, decoded{digest, r, jobs})
	return r, true
}

// put records r as decoded.
func (c *registrations) put(r Registration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(r.Replica.Replica, decoded{r.digest, r.Replica, r.jobs})
}

func (c *registrations) set(id string, d decoded) {
	if c.byID == nil {
		c.byID = map[string]decoded{}
	}
	c.byID[id] = d
}

// keep forgets the registrations of the replicas not in ids.
func (c *registrations) keep(ids map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.byID {
		if !ids[id] {
			delete(c.byID, id)
		}
	}
}

// replicasKey is the index of live replicas: a sorted set of replica ids
// scored by the expiry (ms) of their heartbeat.
func (s *Store) replicasKey() string { return s.prefix + ":replicas" }

// replicaKey holds one replica's registration (JSON), with a TTL.
func (s *Store) replicaKey(id string) string { return s.prefix + ":replica:" + id }

// digestKey holds the digest of one replica's registration (digestOf),
// with the registration's TTL. The digests share a hash tag, so that one
// MGET reads them all on a Cluster too.
func (s *Store) digestKey(id string) string { return s.prefix + ":{replicas}:digest:" + id }

// Heartbeat registers r as live for ttl on every node (a majority must
// confirm), and drops expired entries from the index.
func (s *Store) Heartbeat(ctx context.Context, r Registration, ttl time.Duration) error {
	idx, key, digest := s.replicasKey(), s.replicaKey(r.Replica.Replica), s.digestKey(r.Replica.Replica)
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		now := time.Now()
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, "set", key, r.raw, "px", ttl.Milliseconds()))
		// A reader may see this digest beside the registration before
		// it (on a Cluster the two keys are on different nodes): it
		// caches what it read under that registration's own digest, so
		// the next read finds the digest changed and reads it again.
		_ = pipe.Process(ctx, redis.NewStatusCmd(ctx, "set", digest, r.digest, "px", ttl.Milliseconds()))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zadd", idx, now.Add(ttl).UnixMilli(), r.Replica.Replica))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zremrangebyscore", idx, "-inf", strconv.FormatInt(now.UnixMilli(), 10)))
		_ = pipe.Process(ctx, redis.NewBoolCmd(ctx, "pexpire", idx, (3*ttl).Milliseconds()))
		_, err := pipe.Exec(ctx)
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", r.Replica.Replica, err)
	}
	s.read.put(r) // Replicas then reads this replica's own as decoded
	return nil
}

// Unregister removes replica id (at shutdown); best effort.
func (s *Store) Unregister(ctx context.Context, id string) error {
	idx, key, digest := s.replicasKey(), s.replicaKey(id), s.digestKey(id)
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "del", key))
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "del", digest)) // another hash slot on a Cluster
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "zrem", idx, id))
		_, err := pipe.Exec(ctx)
		return struct{}{}, err
	})
	return err
}

// digests reads the digests of ids' registrations in one MGET: "" where
// a replica wrote none.
func (s *Store) digests(ctx context.Context, c locker.Client, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, 0, 1+len(ids))
	args = append(args, "mget")
	for _, id := range ids {
		args = append(args, s.digestKey(id))
	}
	cmd := redis.NewSliceCmd(ctx, args...)
	err := c.Process(ctx, cmd)
	if err != nil && strings.HasPrefix(err.Error(), "NOPERM") {
		// An ACL user set up before MGET joined ACLCommands: one GET
		// each, as before (a refused command a heartbeat).
		cmds := gets(ctx, c, ids, s.digestKey)
		for i, g := range cmds {
			out[i] = g.Val() // "" for a missing key
		}
		return out, firstErr(cmds)
	}
	if err != nil {
		return nil, err
	}
	for i, v := range cmd.Val() {
		if i < len(out) {
			out[i], _ = v.(string)
		}
	}
	return out, nil
}

// gets reads key(id) for each of ids in one pipeline; a missing key's
// command fails with redis.Nil.
func gets(ctx context.Context, c locker.Client, ids []string, key func(string) string) []*redis.StringCmd {
	cmds := make([]*redis.StringCmd, len(ids))
	if len(ids) == 0 {
		return cmds
	}
	pipe := c.Pipeline()
	for i, id := range ids {
		cmds[i] = redis.NewStringCmd(ctx, "get", key(id))
		_ = pipe.Process(ctx, cmds[i])
	}
	_, _ = pipe.Exec(ctx) // each command holds its error
	return cmds
}

// firstErr returns the first error of cmds other than a missing key.
func firstErr(cmds []*redis.StringCmd) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// Replicas lists the live replicas (those whose registration has not
// expired), by id: the union of what the nodes that answered hold, the
// newest copy of each (see Replica.Generation). A
// registration unchanged since the last call is not decoded again: the
// Jobs maps returned are shared with later calls, to read only.
func (s *Store) Replicas(ctx context.Context) ([]Replica, error) {
	idx := s.replicasKey()
	lists, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) ([]Replica, error) {
		ids := redis.NewStringSliceCmd(ctx, "zrangebyscore", idx, strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf")
		if err := c.Process(ctx, ids); err != nil {
			return nil, err
		}
		// The digests first, in one MGET; then the registrations whose
		// digest is not the one decoded last time (or that have none: a
		// replica of a version that writes none).
		digests, err := s.digests(ctx, c, ids.Val())
		if err != nil {
			return nil, err
		}
		var out []Replica
		var changed []string
		for i, id := range ids.Val() {
			if r, hit := s.read.cached(id, digests[i]); hit {
				out = append(out, r)
				continue
			}
			changed = append(changed, id)
		}
		raws := gets(ctx, c, changed, s.replicaKey)
		if err := firstErr(raws); err != nil {
			return nil, err
		}
		for i, g := range raws {
			if g.Err() != nil {
				continue // expired since the index was read
			}
			if r, ok := s.read.decode(changed[i], g.Val()); ok {
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
			if old, seen := byID[r.Replica]; !seen || r.newer(old) {
				byID[r.Replica] = r
			}
		}
	}
	out := make([]Replica, 0, len(byID))
	ids := map[string]bool{}
	for id, r := range byID {
		out = append(out, r)
		ids[id] = true
	}
	s.read.keep(ids)
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

// newer says whether r is a later registration of its replica than old:
// a later process start, or a later one of the same process.
func (r Replica) newer(old Replica) bool {
	if !r.Started.Equal(old.Started) {
		return r.Started.After(old.Started)
	}
	return r.Generation > old.Generation
}

// Drift is, for each job defined on some live replica, whether the live
// replicas disagree on it: different fingerprints, or defined on some and
// not on others. A single replica never drifts. Replicas with the same
// ConfigHash (a hash of every job's name and fingerprint) agree on every
// job: then Drift reads no job and returns an empty map.
func Drift(rs []Replica) map[string]bool {
	same := len(rs) > 0 && rs[0].ConfigHash != ""
	for _, r := range rs {
		same = same && r.ConfigHash == rs[0].ConfigHash
	}
	if same {
		return map[string]bool{}
	}
	first := map[string]string{} // job -> the first fingerprint seen
	count := map[string]int{}
	out := map[string]bool{}
	for _, r := range rs {
		for job, fp := range r.Jobs {
			if f, seen := first[job]; !seen {
				first[job] = fp
			} else if f != fp {
				out[job] = true
			}
			count[job]++
		}
	}
	for job, n := range count {
		out[job] = out[job] || n < len(rs)
	}
	return out
}
