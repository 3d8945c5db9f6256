package schedule_test

import (
	"fmt"
	"time"

	"github.com/redcron/redcron/scheduler/schedule"
)

// A 02:30 job in New York on the spring-forward day runs once, at 03:00 EDT,
// the transition; robfig/cron alone would skip that day.
func ExampleParse() {
	ny, _ := time.LoadLocation("America/New_York")
	s, err := schedule.Parse("30 2 * * *", ny)
	if err != nil {
		panic(err)
	}
	t := time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC)
	for range 3 {
		t = s.Next(t)
		fmt.Println(t.In(ny).Format("Jan 2 15:04 MST"), "=", t.Format(time.RFC3339))
	}
	// Output:
	// Mar 7 02:30 EST = 2026-03-07T07:30:00Z
	// Mar 8 03:00 EDT = 2026-03-08T07:00:00Z
	// Mar 9 02:30 EDT = 2026-03-09T06:30:00Z
}
