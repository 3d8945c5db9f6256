package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redcron/redcron/scheduler"
)

// jobSpecs are the schedules of a suite's jobs, job i named "j<i>" (six
// digits). spec "" is the load suite's mixed set: 99 in 100 jobs hourly,
// spread over the hour's seconds, and 1 in 100 every minute, spread over
// the minute's seconds.
func jobSpecs(n int, spec string) []string {
	specs := make([]string, n)
	for i := range specs {
		switch {
		case spec != "":
			specs[i] = spec
		case i%100 == 0:
			specs[i] = fmt.Sprintf("%d * * * * *", (i/100)%60)
		default:
			h := i * 3600 / n // second of the hour
			specs[i] = fmt.Sprintf("%d %d * * * *", h%60, h/60)
		}
	}
	return specs
}

func jobName(i int) string { return fmt.Sprintf("j%06d", i) }

// writeJobs writes the jobs.yaml every replica of a scenario on masters
// loads: the redis: block's connection lines (conn), the suite's
// catchup_window and history keep over the defaults, and one Go job per
// spec (with the suite's jitter, if any).
func writeJobs(dir string, s suite, masters int, specs []string, conn string) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("%s-%d-m%d.yaml", s.name, len(specs), masters))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "redis:\n%sdefaults:\n  catchup_window: %s\n  history: {keep: %d}\njobs:\n",
		conn, s.catchup, s.keep)
	jitter := ""
	if s.jitter > 0 {
		jitter = fmt.Sprintf(", jitter: %s", s.jitter)
	}
	for i, spec := range specs {
		fmt.Fprintf(w, "  %s: {schedule: %q, func: %s%s}\n", jobName(i), spec, funcName, jitter)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// retention is a slot mark's retention for the suite's jobs
// (Scheduler.MarkRetention, with the default max_clock_skew).
func (s suite) retention() time.Duration {
	return scheduler.MarkRetentionOf(scheduler.DefaultMaxClockSkew, s.catchup, s.jitter)
}
