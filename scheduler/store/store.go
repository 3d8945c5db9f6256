package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

// Store reads and writes the state kept beside the leases: pause keys,
// history and marks. Every call reaches every node in parallel (locker.Each)
// and needs a majority of them to answer, so that in quorum mode a stale
// minority never decides what an operator sees.
type Store struct {
	lk     *locker.Locker
	prefix string
	// read holds the registrations Replicas last decoded, by replica id.
	read registrations
}

// New returns the store of the jobs under prefix ("" means DefaultPrefix),
// on the locker's nodes.
func New(lk *locker.Locker, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{lk: lk, prefix: prefix}
}

// Keys returns the keys of job.
func (s *Store) Keys(job string) Keys { return JobKeys(s.prefix, job) }

// PauseState is a job's pause as the claims see it.
type PauseState struct {
	// Paused is true when claims are refused: the pause key is on so many
	// nodes that no majority can accept a claim (on the one node, in
	// single-node mode).
	Paused bool
	// Note is the operator's note (the pause key's value).
	Note string
	// Nodes is how many of the nodes that answered hold the pause key.
	Nodes int
}

// Paused reads job's pause state.
func (s *Store) Paused(ctx context.Context, job string) (PauseState, error) {
	key := s.Keys(job).Paused()
	notes, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (*string, error) {
		cmd := redis.NewStringCmd(ctx, "get", key)
		if err := c.Process(ctx, cmd); err != nil {
			if errors.Is(err, redis.Nil) {
				return nil, nil
			}
			return nil, err
		}
		v := cmd.Val()
		return &v, nil
	})
	if err != nil {
		return PauseState{}, fmt.Errorf("store: pause state of %q: %w", job, err)
	}
	var st PauseState
	for _, n := range notes {
		if n != nil {
			st.Nodes++
			st.Note = *n
		}
	}
	st.Paused = st.Nodes > s.lk.Nodes()-locker.Majority(s.lk.Nodes())
	return st, nil
}

// Pause pauses job on every node with the operator's note (the key has no
// TTL: one per job, until resumed). It succeeds once a majority confirmed.
func (s *Store) Pause(ctx context.Context, job, note string) error {
	key := s.Keys(job).Paused()
	if note == "" {
		note = "paused"
	}
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		return struct{}{}, c.Process(ctx, redis.NewStatusCmd(ctx, "set", key, note))
	})
	if err != nil {
		return fmt.Errorf("store: pause %q: %w", job, err)
	}
	return nil
}

// Resume deletes job's pause key on every node; it succeeds once a majority
// confirmed.
func (s *Store) Resume(ctx context.Context, job string) error {
	key := s.Keys(job).Paused()
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		return struct{}{}, c.Process(ctx, redis.NewIntCmd(ctx, "del", key))
	})
	if err != nil {
		return fmt.Errorf("store: resume %q: %w", job, err)
	}
	return nil
}

// Page selects final records for History: newest slot first.
type Page struct {
	// Limit is the most records returned; default 20.
	Limit int
	// Before, when not zero, keeps the records whose slot is strictly
	// earlier (the previous page's last slot).
	Before time.Time
	// Failures keeps only the runs that did not succeed (see Failed).
	Failures bool
}

// Failed says whether a record is a run that did not succeed: an outcome
// other than ok, skipped or running.
func Failed(r Record) bool {
	switch r.Outcome {
	case OutcomeOK, OutcomeSkipped, OutcomeRunning:
		return false
	}
	return true
}

// History returns a page of job's final records, newest slot first: the
// union of what the nodes that answered hold (a record missing on a node
// that was down when it was written still shows), at most p.Limit.
func (s *Store) History(ctx context.Context, job string, p Page) ([]Record, error) {
	if p.Limit <= 0 {
		p.Limit = 20
	}
	key := s.Keys(job).History()
	lists, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) ([]string, error) {
		cmd := redis.NewStringSliceCmd(ctx, "zrevrange", key, 0, -1)
		err := c.Process(ctx, cmd)
		return cmd.Val(), err
	})
	if err != nil {
		return nil, fmt.Errorf("store: history of %q: %w", job, err)
	}
	seen := map[string]bool{}
	var out []Record
	for _, l := range lists {
		for _, raw := range l {
			if seen[raw] {
				continue
			}
			seen[raw] = true
			r, err := ParseRecord(raw)
			if err != nil || (!p.Before.IsZero() && !r.Slot.Before(p.Before)) || (p.Failures && !Failed(r)) {
				continue
			}
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := b.Slot.Compare(a.Slot); c != 0 {
			return c
		}
		return b.Started.Compare(a.Started)
	})
	return out[:min(p.Limit, len(out))], nil
}

// Running is a run that holds its lease now.
type Running struct {
	// Record is the claim's running record (job, slot, replica, started,
	// fence, manual).
	Record Record
	// LeaseUntil is when its lease expires unless renewed (server clock).
	LeaseUntil time.Time
}

// Running lists job's runs that hold a lease now, oldest slot first (on
// each node that answered, merged by mark).
func (s *Store) Running(ctx context.Context, job string) ([]Running, error) {
	key := s.Keys(job).Running()
	ns, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (map[string]Running, error) {
		now := redis.NewTimeCmd(ctx, "time")
		idx := redis.NewZSliceCmd(ctx, "zrange", key, 0, -1, "withscores")
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, now)
		_ = pipe.Process(ctx, idx)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		var marks []string
		until := map[string]time.Time{}
		for _, z := range idx.Val() {
			m, _ := z.Member.(string)
			t := time.UnixMilli(int64(z.Score))
			if t.After(now.Val()) {
				marks = append(marks, m)
				until[m] = t
			}
		}
		out := map[string]Running{}
		if len(marks) == 0 {
			return out, nil
		}
		pipe = c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(marks))
		for i, m := range marks {
			cmds[i] = redis.NewMapStringStringCmd(ctx, "hgetall", m)
			_ = pipe.Process(ctx, cmds[i])
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		for i, m := range marks {
			mk, ok, err := ParseMark(cmds[i].Val())
			if err != nil || !ok || mk.Ended {
				continue
			}
			out[m] = Running{Record: mk.Claim, LeaseUntil: until[m]}
		}
		return out, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: running runs of %q: %w", job, err)
	}
	merged := map[string]Running{}
	for _, n := range ns {
		for m, r := range n {
			if prev, ok := merged[m]; !ok || r.LeaseUntil.After(prev.LeaseUntil) {
				merged[m] = r
			}
		}
	}
	out := make([]Running, 0, len(merged))
	for _, r := range merged {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Running) int { return a.Record.Slot.Compare(b.Record.Slot) })
	return out, nil
}

// Mark reads the mark of (job, slot); ok is false when no node that
// answered has one. In quorum mode the mark with the highest fence wins,
// and an ended mark over a running one.
func (s *Store) Mark(ctx context.Context, job string, slot time.Time) (m Mark, ok bool, err error) {
	return s.readMark(ctx, job, s.Keys(job).Mark(slot))
}

func (s *Store) readMark(ctx context.Context, job, key string) (Mark, bool, error) {
	hs, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (map[string]string, error) {
		cmd := redis.NewMapStringStringCmd(ctx, "hgetall", key)
		err := c.Process(ctx, cmd)
		return cmd.Val(), err
	})
	if err != nil {
		return Mark{}, false, fmt.Errorf("store: mark %q: %w", key, err)
	}
	var best Mark
	found := false
	for _, h := range hs {
		m, ok, err := ParseMark(h)
		if err != nil {
			return Mark{}, false, fmt.Errorf("store: mark %q: %w", key, err)
		}
		if ok && (!found || (m.Ended && !best.Ended) || (m.Ended == best.Ended && m.Fence > best.Fence)) {
			best, found = m, true
		}
	}
	return best, found, nil
}
