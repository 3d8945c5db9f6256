package jobs_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redcron/redcron/jobs"
)

func ExampleRegister() {
	// In an init function or main, before loading jobs.yaml:
	type reportArgs struct {
		Recipient string `yaml:"recipient"`
		Days      int    `yaml:"days"`
	}
	jobs.Register("example.report", func(ctx context.Context, r jobs.Run, a reportArgs) error {
		// Hand r.Fence to downstream stores so they can refuse a stale writer.
		fmt.Printf("report of %d days for %s, slot %s, fence %d, attempt %d\n",
			a.Days, a.Recipient, r.Slot.Format(time.RFC3339), r.Fence, r.Attempt)
		return ctx.Err()
	})

	cfg, err := jobs.Parse("jobs.yaml", []byte(`
jobs:
  weekly-report:
    schedule: "0 8 * * MON"
    timezone: Europe/Paris
    func: example.report
    args: {recipient: ops@example.com, days: 7}
`), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The scheduler does this once it holds the slot's claim.
	slot := time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)
	err = cfg.Jobs[0].Run(context.Background(), jobs.Run{Slot: slot, Fence: 42, Attempt: 1})
	fmt.Println("outcome:", err)
	// Output:
	// report of 7 days for ops@example.com, slot 2026-11-30T07:00:00Z, fence 42, attempt 1
	// outcome: <nil>
}

func ExampleParse_errors() {
	_, err := jobs.Parse("jobs.yaml", []byte(`
jobs:
  backup:
    schedule: "@every -1m"
    command: "tar czf /tmp/x.tgz /srv"
    lock_ttl: 30
`), nil)
	fmt.Println(err)
	// Output:
	// jobs.yaml:4: job backup: field schedule: bad schedule: "@every -1m": @every must be positive
	// jobs.yaml:5: job backup: field command: want an argv list (no shell), got the string "tar czf /tmp/x.tgz /srv"; for a shell write ["sh", "-c", "..."]
	// jobs.yaml:6: job backup: field lock_ttl: bad duration "30": want a number with a unit, like 30s or 1m30s
}
