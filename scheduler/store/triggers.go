package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/locker"
)

// TriggerRequest asks a live replica to run a job now (redcron trigger):
// it is queued in Redis and taken by one replica, which runs it as a
// manual run whose mark is the job's ManualMark(ID).
type TriggerRequest struct {
	ID          int64     `json:"id"` // Unix nanoseconds at the request, unique per job
	Job         string    `json:"job"`
	RequestedAt time.Time `json:"requested_at"`
	By          string    `json:"by,omitempty"`
}

// triggersKey is the queue of trigger requests (a list).
func (s *Store) triggersKey() string { return s.prefix + ":triggers" }

// QueueTrigger queues r on every node (a majority must confirm). In quorum
// mode each node holds a copy and replicas may take several: the manual
// run's claim on ManualMark(ID) lets one of them run it.
func (s *Store) QueueTrigger(ctx context.Context, r TriggerRequest) error {
	b, _ := json.Marshal(r)
	key := s.triggersKey()
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		pipe := c.Pipeline()
		_ = pipe.Process(ctx, redis.NewIntCmd(ctx, "lpush", key, string(b)))
		_ = pipe.Process(ctx, redis.NewBoolCmd(ctx, "expire", key, 3600)) // a queue nobody reads is bounded
		_, err := pipe.Exec(ctx)
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("store: queue trigger of %q: %w", r.Job, err)
	}
	return nil
}

// TakeTriggers pops the queued requests (at most max per node) from every
// node that answers; a request is taken by one replica per node.
func (s *Store) TakeTriggers(ctx context.Context, max int) ([]TriggerRequest, error) {
	key := s.triggersKey()
	lists, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) ([]string, error) {
		cmd := redis.NewStringSliceCmd(ctx, "rpop", key, max)
		if err := c.Process(ctx, cmd); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		return cmd.Val(), nil
	})
	seen := map[int64]bool{}
	var out []TriggerRequest
	for _, l := range lists {
		for _, raw := range l {
			var r TriggerRequest
			if json.Unmarshal([]byte(raw), &r) == nil && !seen[r.ID] {
				seen[r.ID] = true
				out = append(out, r)
			}
		}
	}
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("store: take triggers: %w", err)
	}
	return out, nil
}

// Pending says whether the request is still queued (no replica took it).
func (s *Store) Pending(ctx context.Context, r TriggerRequest) (bool, error) {
	b, _ := json.Marshal(r)
	key := s.triggersKey()
	res, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (bool, error) {
		cmd := redis.NewIntCmd(ctx, "lpos", key, string(b))
		err := c.Process(ctx, cmd)
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return false, fmt.Errorf("store: trigger of %q: %w", r.Job, err)
	}
	for _, p := range res {
		if p {
			return true, nil
		}
	}
	return false, nil
}

// WithdrawTrigger removes a request nobody took.
func (s *Store) WithdrawTrigger(ctx context.Context, r TriggerRequest) error {
	b, _ := json.Marshal(r)
	key := s.triggersKey()
	_, err := locker.Each(ctx, s.lk, func(ctx context.Context, c locker.Client) (struct{}, error) {
		return struct{}{}, c.Process(ctx, redis.NewIntCmd(ctx, "lrem", key, 0, string(b)))
	})
	return err
}

// Manual reads the mark of a manual run (id as in TriggerRequest); ok is
// false while no replica has claimed it.
func (s *Store) Manual(ctx context.Context, job string, id int64) (Mark, bool, error) {
	return s.readMark(ctx, job, s.Keys(job).ManualMark(id))
}
