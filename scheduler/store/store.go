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

// History returns up to n of job's newest final records, newest slot
// first: the union of what the nodes that answered hold (a record missing
// on a node that was down when it was written still shows).
func (s *Store) History(ctx context.Context, job string, n int) ([]Record, error) {
	key := s.Keys(job).History()
	lists, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) ([]string, error) {
		cmd := redis.NewStringSliceCmd(ctx, "lrange", key, 0, n-1)
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
			if r, err := ParseRecord(raw); err == nil {
				out = append(out, r)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Record) int {
		if c := b.Slot.Compare(a.Slot); c != 0 {
			return c
		}
		return b.Started.Compare(a.Started)
	})
	return out[:min(n, len(out))], nil
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
