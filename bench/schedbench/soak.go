package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// sample is Redis (summed over its masters) and every replica at one
// snapshot of a sampled suite's window.
type sample struct {
	at           time.Time
	memory, keys int64     // used_memory, DBSIZE
	mem          []memSnap // per replica, by replica index
}

// sampleSnaps are a sampled window's snapshot instants: its start, every
// step after it, and its end (the second after its last slot), each at
// edge of its second.
func sampleSnaps(from, to int64, step time.Duration, edge func(int64) time.Time) []time.Time {
	var out []time.Time
	for sec := from; sec <= to; sec += int64(step / time.Second) {
		out = append(out, edge(sec))
	}
	return append(out, edge(to+1))
}

// samples pairs the parent's snapshots with the replicas' memory at the
// same instants; nil when the replicas did not sample (unsampled suites).
func samples(reports []childReport, ss []serverSnap) []sample {
	rs := slices.Clone(reports)
	slices.SortFunc(rs, func(a, b childReport) int { return a.Replica - b.Replica })
	for _, r := range rs {
		if len(r.Mems) != len(ss) {
			return nil
		}
	}
	out := make([]sample, len(ss))
	for i, s := range ss {
		out[i] = sample{at: s.at, memory: s.memory, keys: s.keys}
		for _, r := range rs {
			out[i].mem = append(out[i].mem, r.Mems[i])
		}
	}
	return out
}

// series is one sampled figure, by sample.
type series struct {
	name string
	get  func(sample) float64
}

// soakSeries are the sampled figures of replicas replicas.
func soakSeries(replicas int) []series {
	out := []series{
		{"Redis used_memory (MiB)", func(s sample) float64 { return float64(s.memory) / mib }},
		{"keys", func(s sample) float64 { return float64(s.keys) }},
	}
	for i := range replicas {
		out = append(out,
			series{replicaName(i) + " live heap (MiB)", func(s sample) float64 { return float64(s.mem[i].Live) / mib }},
			series{replicaName(i) + " RSS (MiB)", func(s sample) float64 { return float64(s.mem[i].RSS) / mib }})
	}
	return out
}

// soak prints every run's samples and how much each figure grew: from the
// first sample (the window's start, after the warmup) to the last, and to
// the largest over the window's second half.
func (r suiteResult) soak() {
	for _, sc := range r.suite.scenarios() {
		for rep, m := range r.runs[sc] {
			if len(m.samples) == 0 {
				continue
			}
			ser := soakSeries(sc.replicas)
			fmt.Printf("\nSamples, %v, rep %d: minutes from the window's start; replicas' live heap after a forced GC, and RSS\n\n| minute |", sc, rep+1)
			for _, s := range ser {
				fmt.Printf(" %s |", s.name)
			}
			fmt.Printf("\n| ---: |%s\n", strings.Repeat(" ---: |", len(ser)))
			t0 := m.samples[0].at
			for _, smp := range m.samples {
				fmt.Printf("| %.2f |", smp.at.Sub(t0).Minutes())
				for _, s := range ser {
					fmt.Printf(" %s |", trimFloat(s.get(smp)))
				}
				fmt.Println()
			}
			var growth []string
			for _, s := range ser {
				growth = append(growth, fmt.Sprintf("%s %s (max of the last half %s)", s.name, grew(m.samples, s, false), grew(m.samples, s, true)))
			}
			fmt.Printf("\n- Flatness, growth from the first sample (after a %v warmup) to the last: %s\n", r.suite.warmup, strings.Join(growth, "; "))
			var trends []string
			for _, s := range ser {
				trends = append(trends, s.name+" "+trend(m.samples, s))
			}
			fmt.Printf("- Trend over the window (a single sample swings with GC; these use every sample): least-squares slope per 10 minutes, in %% of the series' mean, and the mean of the second half against the first: %s\n", strings.Join(trends, "; "))
			fmt.Printf("- Whole window (%d s at %.0f firings/s): %d duplicates, %d misses, lag p50 %.1f ms, p99 %.1f ms, %.2f commands / firing, Redis CPU %.1f us / firing\n",
				m.to-m.from+1, m.firings()/float64(m.to-m.from+1), m.v.duplicates, m.v.misses,
				msOf(pct(m.v.lag, 50)), msOf(pct(m.v.lag, 99)), colCmds.get(&m), colRedisCPU.get(&m))
		}
	}
}

// grew is s's growth from the first sample to the last (or to the largest
// of the second half), in percent of the first.
func grew(ss []sample, s series, lastHalfMax bool) string {
	first, last := s.get(ss[0]), s.get(ss[len(ss)-1])
	if lastHalfMax {
		last = s.get(ss[len(ss)/2])
		for _, x := range ss[len(ss)/2:] {
			last = max(last, s.get(x))
		}
	}
	if first == 0 {
		return fmt.Sprintf("%s -> %s", trimFloat(first), trimFloat(last))
	}
	return fmt.Sprintf("%+.1f %%", 100*(last-first)/first)
}

// trend is s's least-squares slope over the samples, per 10 minutes in
// percent of its mean, and the mean of the second half of the samples
// against the first, in percent.
func trend(ss []sample, s series) string {
	if len(ss) < 4 {
		return "n/a (fewer than 4 samples)"
	}
	n := float64(len(ss))
	var sx, sy float64
	for _, x := range ss {
		sx += x.at.Sub(ss[0].at).Minutes()
		sy += s.get(x)
	}
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for _, x := range ss {
		dx := x.at.Sub(ss[0].at).Minutes() - mx
		sxy += dx * (s.get(x) - my)
		sxx += dx * dx
	}
	if my == 0 || sxx == 0 {
		return "n/a (zero mean or one instant)"
	}
	half := len(ss) / 2
	var a, b float64
	for _, x := range ss[:half] {
		a += s.get(x)
	}
	for _, x := range ss[len(ss)-half:] {
		b += s.get(x)
	}
	return fmt.Sprintf("%+.1f %% / 10 min, halves %+.1f %%", 100*10*sxy/sxx/my, 100*(b-a)/a)
}

// trimFloat prints x with one decimal, or none when it is whole.
func trimFloat(x float64) string {
	if x == float64(int64(x)) {
		return fmt.Sprintf("%d", int64(x))
	}
	return fmt.Sprintf("%.1f", x)
}
