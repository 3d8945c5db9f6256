package scheduler

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

type quietRedisLog struct{}

func (quietRedisLog) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the outage test makes thousands.
	redis.SetLogger(quietRedisLog{})
	// A go-redis pool whose node is down redials from a goroutine that
	// sleeps a second between tries and exits on its next wake after Close
	// (TestQuorumMajorityAlive runs with dead masters).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}
