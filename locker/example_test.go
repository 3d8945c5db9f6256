package locker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
)

// A run of job "backup" for one slot: claim it with a mark, work under the
// lease's context, and finish with a record that keeps the slot claimed.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: exampleAddr}) // a redis-server started by TestMain
	defer client.Close()
	client.Del(ctx, "example:{backup}:fence", "example:{backup}:slot:1700000000")

	l := locker.New(client, locker.Options{})
	claim := locker.Claim{
		Key:      "example:{backup}:run",
		FenceKey: "example:{backup}:fence",
		TTL:      10 * time.Second,
		MarkKey:  "example:{backup}:slot:1700000000",
		MarkTTL:  time.Hour,
	}
	lease, err := l.Obtain(ctx, claim)
	if err != nil {
		fmt.Println("not obtained:", err)
		return
	}
	fmt.Println("fence", lease.Fence())

	// The job runs under lease.Ctx(): it is cancelled if the lease is lost.
	_ = lease.Ctx()

	if err := lease.Finish(ctx, "done:ok", time.Hour); err != nil {
		fmt.Println("finish:", err)
		return
	}
	fmt.Println("cause", context.Cause(lease.Ctx()))

	// The slot stays claimed: a second replica is refused.
	_, err = l.Obtain(ctx, claim)
	var noe *locker.NotObtainedError
	if errors.As(err, &noe) {
		fmt.Println(errors.Is(err, locker.ErrSlotClaimed), noe.Record)
	}
	// Output:
	// fence 1
	// cause locker: lease released
	// true done:ok
}
