package main

import (
	"fmt"
	"io"
	"time"

	"github.com/redcron/redcron/jobs"
)

// nextCommand is `redcron next [JOB]`: the next fire times of one job or
// all, in the job's zone and in UTC, with a note where a daylight-saving
// change moves or merges a slot. It reads only the file.
func nextCommand(args []string, stdout, stderr io.Writer) int {
	c := newControlFlags("next", stderr, true)
	count := c.fs.Int("count", 5, "how many fire times per job")
	pos, code, done := c.parse(args, 0, 1, stderr)
	if done {
		return code
	}
	if *count < 1 || *count > 1000 {
		fmt.Fprintln(stderr, "redcron next: --count must be 1 to 1000")
		return exitUsage
	}
	cfg, code := loadConfig("next", *c.config, stderr)
	if cfg == nil {
		return code
	}
	js := cfg.Jobs
	if len(pos) == 1 {
		j := cfg.Job(pos[0])
		if j == nil {
			fmt.Fprintf(stderr, "redcron next: %s has no job %q\n", cfg.File, pos[0])
			return exitUsage
		}
		js = []*jobs.Job{j}
	}
	type fire struct {
		Local string    `json:"local"`
		UTC   time.Time `json:"utc"`
		Note  string    `json:"note,omitempty"`
	}
	type jobFires struct {
		Job      string `json:"job"`
		Schedule string `json:"schedule"`
		Timezone string `json:"timezone"`
		Fires    []fire `json:"next"`
	}
	now := nowFunc()
	var out []jobFires
	for _, j := range js {
		jf := jobFires{Job: j.Name, Schedule: j.Spec, Timezone: j.Location.String(), Fires: []fire{}}
		t := now
		for range *count {
			if t = j.Schedule.Next(t); t.IsZero() {
				break
			}
			jf.Fires = append(jf.Fires, fire{Local: t.In(j.Location).Format("2006-01-02 15:04:05 MST"), UTC: t.UTC(), Note: dstNote(j, t)})
		}
		out = append(out, jf)
	}
	if *c.json {
		printJSON(stdout, out)
		return exitOK
	}
	for i, jf := range out {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s  %q  %s\n", jf.Job, jf.Schedule, jf.Timezone)
		tw := table(stdout, "  LOCAL", "UTC", "NOTE")
		for _, f := range jf.Fires {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Local, utc(f.UTC), f.Note)
		}
		_ = tw.Flush()
	}
	return exitOK
}

// nowFunc is the clock of next; tests may replace it.
var nowFunc = time.Now

// dstNote explains a slot that a daylight-saving change moves: on a
// spring-forward day a fixed-time job whose local time does not exist runs
// once at the transition; on a fall-back day one whose local time repeats
// runs once, at the first occurrence (Vixie cron's rule).
func dstNote(j *jobs.Job, t time.Time) string {
	loc := j.Location
	_, before := t.Add(-12 * time.Hour).In(loc).Zone()
	_, after := t.Add(12 * time.Hour).In(loc).Zone()
	if before == after || !j.Schedule.FixedTime() {
		return ""
	}
	if after > before {
		return fmt.Sprintf("daylight saving starts this day (UTC%+d to UTC%+d): a local time that does not exist runs at the transition", before/3600, after/3600)
	}
	return fmt.Sprintf("daylight saving ends this day (UTC%+d to UTC%+d): a local time that repeats runs once, the first time", before/3600, after/3600)
}
