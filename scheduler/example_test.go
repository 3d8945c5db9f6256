package scheduler_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/statusapi"
)

// Every replica waits the same jitter before claiming a given slot.
func ExampleJitter() {
	slot := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := scheduler.Jitter("backup", slot, 10*time.Second)
	b := scheduler.Jitter("backup", slot, 10*time.Second)
	fmt.Println(a == b, a < 10*time.Second)
	// Output: true true
}

// Wiring as cmd/redcron does it (compiled, not run: it needs Redis): the
// file's cluster settings and redis: block, and the status handler.
func ExampleFromConfig() {
	cfg, err := jobs.Load("jobs.yaml")
	if err != nil {
		panic(err)
	}
	s, err := scheduler.FromConfig(cfg, scheduler.Options{Replica: "replica-1"})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	http.Handle("/redcron/", http.StripPrefix("/redcron", statusapi.ForScheduler(s, os.Getenv("REDCRON_HTTP_TOKEN"))))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	_ = s.Run(ctx) // nil after a graceful shutdown
}
