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

// BeforeHook is a go-redis hook that calls itself with each command before
// it is sent, pipelined or not: to cause a fault (a cut, a hold) at the
// moment a given command goes out.
type BeforeHook func(cmd redis.Cmder)

// DialHook dials as the client would.
func (f BeforeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook calls f with cmd, then next.
func (f BeforeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		f(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook calls f with each of cmds, then next.
func (f BeforeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			f(c)
		}
		return next(ctx, cmds)
	}
}

var (
	_ redis.Hook = AfterHook(nil)
	_ redis.Hook = BeforeHook(nil)
)
