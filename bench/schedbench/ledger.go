package main

import (
	"math"
	"sort"
	"sync"
	"time"
)

// entry is one job start as the job saw it.
type entry struct {
	job     int32
	replica int32
	slot    int64     // Unix seconds of the slot the run is for
	fence   int64     // 0 for gocron (it has none)
	start   time.Time // real clock (monotonic reading kept)
	lagOwn  time.Duration
}

// ledger records every job start of one scenario.
type ledger struct {
	mu      sync.Mutex
	entries []entry
}

func newLedger(capacity int) *ledger { return &ledger{entries: make([]entry, 0, capacity)} }

func (l *ledger) add(e entry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
}

func (l *ledger) snapshot() []entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]entry(nil), l.entries...)
}

// verdict is the ledger's analysis over the steady window [from, to] of
// slots (Unix seconds, inclusive).
type verdict struct {
	expected, runs, duplicates, misses int
	fenceRegressions                   int
	lag                                []time.Duration // real clock, start - slot, every run in the window
	lagOwn                             []time.Duration // on the running replica's clock
	wins                               []int           // runs per replica
	slotMax                            []time.Duration // per slot of the window: the latest start's lag, sorted
}

func analyse(es []entry, nJobs, nReplicas int, from, to int64) verdict {
	v := verdict{wins: make([]int, nReplicas)}
	nSlots := int(to - from + 1)
	v.expected = nJobs * nSlots
	counts := make([]int, v.expected)
	for _, e := range es {
		if e.slot < from || e.slot > to {
			continue
		}
		v.runs++
		counts[int(e.job)*nSlots+int(e.slot-from)]++
		v.lag = append(v.lag, e.start.Sub(time.Unix(e.slot, 0)))
		v.lagOwn = append(v.lagOwn, e.lagOwn)
		v.wins[e.replica]++
	}
	slotMax := make([]time.Duration, nSlots)
	for i := range slotMax {
		slotMax[i] = math.MinInt64
	}
	for _, e := range es {
		if e.slot >= from && e.slot <= to {
			if d := e.start.Sub(time.Unix(e.slot, 0)); d > slotMax[e.slot-from] {
				slotMax[e.slot-from] = d
			}
		}
	}
	sort.Slice(slotMax, func(i, j int) bool { return slotMax[i] < slotMax[j] })
	v.slotMax = slotMax
	for _, c := range counts {
		switch {
		case c == 0:
			v.misses++
		case c > 1:
			v.duplicates += c - 1
		}
	}
	// Fences must increase with slots per job (redcron only).
	byJob := map[int32][]entry{}
	for _, e := range es {
		if e.fence > 0 {
			byJob[e.job] = append(byJob[e.job], e)
		}
	}
	for _, js := range byJob {
		sort.Slice(js, func(i, j int) bool { return js[i].slot < js[j].slot })
		for i := 1; i < len(js); i++ {
			if js[i].slot > js[i-1].slot && js[i].fence <= js[i-1].fence {
				v.fenceRegressions++
			}
		}
	}
	sort.Slice(v.lag, func(i, j int) bool { return v.lag[i] < v.lag[j] })
	sort.Slice(v.lagOwn, func(i, j int) bool { return v.lagOwn[i] < v.lagOwn[j] })
	return v
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
