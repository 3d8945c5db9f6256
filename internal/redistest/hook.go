package redistest

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// AfterHook is a go-redis hook that calls itself with each command once
// its reply (or error) is in, pipelined or not.
type AfterHook func(cmd redis.Cmder)

// DialHook dials as the client would.
func (f AfterHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook calls f with cmd once next has returned.
func (f AfterHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		f(cmd)
		return err
	}
}

// ProcessPipelineHook calls f with each of cmds once next has returned.
func (f AfterHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			f(c)
		}
		return err
	}
}

var _ redis.Hook = AfterHook(nil)
