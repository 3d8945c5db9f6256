package locker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redcron/redcron/locker"
	"github.com/redis/go-redis/v9"
)

// A run of job "backup" for one slot: claim the slot with a mark, work under
// the lease's context, and finish with a record that keeps the slot claimed.
func Example() {
	ctx := context.Background()
	// A redis-server started by TestMain; the locker owns retrying.
	client := redis.NewClient(&redis.Options{Addr: exampleAddr, MaxRetries: -1, ContextTimeoutEnabled: true})
	defer client.Close()
	client.Del(ctx, "example:{backup}:meta", "example:{backup}:slot:1700000000")

	l, err := locker.New(client, locker.Options{})
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	claim := locker.Claim{
		Key:       "example:{backup}:lease",
		MetaKey:   "example:{backup}:meta",
		TTL:       10 * time.Second,
		MarkKey:   "example:{backup}:slot:1700000000",
		MarkTTL:   time.Hour,
		Retention: 24 * time.Hour,
		Running:   `{"outcome":"running"}`,
		Slot:      time.Unix(1700000000, 0),
		Records: locker.Records{
			Busy:    `{"outcome":"skipped","reason":"overlap"}`,
			Late:    `{"outcome":"skipped","reason":"late"}`,
			Aborted: `{"outcome":"skipped","reason":"aborted"}`,
		},
	}
	lease, err := l.Obtain(ctx, claim)
	if err != nil {
		fmt.Println("not obtained:", err)
		return
	}
	fmt.Println("fence", lease.Fence())

	// The job runs under lease.Ctx(): it is cancelled if the lease is lost.
	_ = lease.Ctx()

	if err := lease.Finish(ctx, `{"outcome":"ok"}`); err != nil {
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
	// true {"outcome":"ok"}
}
