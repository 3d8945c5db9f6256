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
	goleak.VerifyTestMain(m)
}
