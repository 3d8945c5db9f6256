package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler"
)

// Every replica waits the same jitter before claiming a given slot.
func ExampleJitter() {
	slot := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := scheduler.Jitter("backup", slot, 10*time.Second)
	b := scheduler.Jitter("backup", slot, 10*time.Second)
	fmt.Println(a == b, a < 10*time.Second)
	// Output: true true
}

// Wiring as cmd/redcron does it (compiled, not run: it needs Redis).
func ExampleNew() {
	cfg, err := jobs.Load("jobs.yaml")
	if err != nil {
		panic(err)
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	s, err := scheduler.New(cfg.Jobs, locker.New(client, locker.Options{}), scheduler.Options{
		Replica:       "replica-1",
		Clock:         scheduler.OffsetClock(scheduler.RealClock(), 0), // REDCRON_CLOCK_OFFSET
		Prefix:        cfg.Redis.Prefix,
		MaxClockSkew:  cfg.Redis.MaxClockSkew,
		ShutdownGrace: cfg.ShutdownGrace,
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_ = s.Run(ctx) // nil after a graceful shutdown
}
