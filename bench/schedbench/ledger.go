package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/redcron/redcron/scheduler/schedule"
)

// entry is one run as the replica that started it saw it.
type entry struct {
	Job     int32
	Replica int32 // filled in by the parent
	Slot    int64 // Unix seconds of the slot the run is for
	Fence   int64 // 0 for gocron (it has none)
	Start   int64 // Unix nanoseconds, real clock
}

// verdict is the ledger's analysis over the window's slots [from, to].
type verdict struct {
	expected, runs, duplicates, misses int
	// offSchedule counts runs of a (job, second) that is not one of the
	// job's slots; early, runs that started before their slot on the real
	// clock (which is Redis's here).
	offSchedule, early int
	fenceRegressions   int
	lag                []time.Duration // start - slot, every run, sorted
	// latest is, per slot instant of the window (a second at which some
	// job is due), the lag of its last run to start, sorted.
	latest []time.Duration
	wins   []int // runs per replica
	// recorded counts the misses with a skip record, by reason, and
	// unrecorded those without; both nil/zero when records were not read
	// (counted says whether they were).
	recorded   map[string]int
	unrecorded int
	// unrecordedAt counts the misses without a record by their slot's
	// second in the window (slot - from).
	unrecordedAt map[int64]int
	counted      bool
	// lastUnrecorded are some misses without a record from the window's
	// last seconds (whose marks may still be in Redis), for the notes.
	lastUnrecorded []jobSlot
	// regressions are the first fence regressions found (the two runs of
	// each), for the notes.
	regressions []string
}

// jobSlot is one (job index, slot) of a suite.
type jobSlot struct {
	job  int32
	slot int64
}

// slotsOf returns the slots of each spec in [from, to], computed once per
// distinct spec.
func slotsOf(specs []string, from, to int64) ([][]int64, error) {
	memo := map[string][]int64{}
	out := make([][]int64, len(specs))
	for i, spec := range specs {
		if s, ok := memo[spec]; ok {
			out[i] = s
			continue
		}
		sched, err := schedule.Parse(spec, time.UTC)
		if err != nil {
			return nil, err
		}
		var s []int64
		for t := sched.Next(time.Unix(from-1, 0)); !t.IsZero() && t.Unix() <= to; t = sched.Next(t) {
			s = append(s, t.Unix())
		}
		memo[spec], out[i] = s, s
	}
	return out, nil
}

// analyse checks the runs es of the window [from, to]; skips, when not
// nil, are the skip records read from Redis, which the misses are matched
// against.
func analyse(es []entry, specs []string, nReplicas int, from, to int64, skips map[jobSlot]string) (verdict, error) {
	v := verdict{wins: make([]int, nReplicas), counted: skips != nil, recorded: map[string]int{}}
	due, err := slotsOf(specs, from, to)
	if err != nil {
		return v, err
	}
	width := int(to - from + 1)
	// counts[job*width + second] holds runs; want marks the slots.
	counts := make([]uint8, len(specs)*width)
	want := make([]bool, len(specs)*width)
	for j, ss := range due {
		for _, s := range ss {
			want[j*width+int(s-from)] = true
			v.expected++
		}
	}
	latest := make([]time.Duration, width)
	seen := make([]bool, width)
	for _, e := range es {
		if e.Slot < from || e.Slot > to || int(e.Job) >= len(specs) {
			continue
		}
		v.runs++
		v.wins[e.Replica]++
		i := int(e.Job)*width + int(e.Slot-from)
		if counts[i] < 255 {
			counts[i]++
		}
		lag := time.Unix(0, e.Start).Sub(time.Unix(e.Slot, 0))
		v.lag = append(v.lag, lag)
		if lag < 0 {
			v.early++
		}
		if !want[i] {
			v.offSchedule++
			continue
		}
		if k := int(e.Slot - from); !seen[k] || lag > latest[k] {
			latest[k], seen[k] = lag, true
		}
	}
	for i, c := range counts {
		switch {
		case !want[i]:
		case c == 0:
			v.misses++
			if skips != nil {
				if reason, ok := skips[jobSlot{int32(i / width), from + int64(i%width)}]; ok {
					v.recorded[reason]++
				} else {
					v.unrecorded++
					if v.unrecordedAt == nil {
						v.unrecordedAt = map[int64]int{}
					}
					v.unrecordedAt[int64(i%width)]++
					if js := (jobSlot{int32(i / width), from + int64(i%width)}); js.slot >= to-2 && len(v.lastUnrecorded) < 5 {
						v.lastUnrecorded = append(v.lastUnrecorded, js)
					}
				}
			}
		case c > 1:
			v.duplicates += int(c) - 1
		}
	}
	for k := range latest {
		if seen[k] {
			v.latest = append(v.latest, latest[k])
		}
	}
	// Fences must increase with slots, per job (redcron only).
	byJob := map[int32][]entry{}
	for _, e := range es {
		if e.Fence > 0 {
			byJob[e.Job] = append(byJob[e.Job], e)
		}
	}
	for _, js := range byJob {
		slices.SortFunc(js, func(a, b entry) int { return int(a.Slot - b.Slot) })
		for i := 1; i < len(js); i++ {
			if js[i].Slot > js[i-1].Slot && js[i].Fence <= js[i-1].Fence {
				v.fenceRegressions++
				if len(v.regressions) < 5 {
					v.regressions = append(v.regressions, fmt.Sprintf("%s: slot %d fence %d on r%d started %s; slot %d fence %d on r%d started %s",
						jobName(int(js[i].Job)), js[i-1].Slot, js[i-1].Fence, js[i-1].Replica, time.Unix(0, js[i-1].Start).UTC().Format("15:04:05.000"),
						js[i].Slot, js[i].Fence, js[i].Replica, time.Unix(0, js[i].Start).UTC().Format("15:04:05.000")))
				}
			}
		}
	}
	slices.Sort(v.lag)
	slices.Sort(v.latest)
	return v, nil
}

// pct is the p-th percentile (nearest rank) of sorted durations.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(p/100*float64(len(d))+0.5) - 1
	i = min(max(i, 0), len(d)-1)
	return d[i]
}
