package main

import (
	"fmt"
	"strings"
)

// clusterJobs is the cluster suite's job count, every second.
const clusterJobs = 5000

// quorumJobs is the quorum suite's job count, every second: past the knee
// of quorum mode on 3 masters and 2 cores (at 8e15bce one rep each ran
// every firing at 5,000/s, and missed most at 5,500/s), so that the
// replicas miss firings and must record them.
const quorumJobs = 5500

// colRate is the firings the replicas ran per second of the window (each
// slot run at least once).
var colRate = column{"firings run / s", "%.0f", func(m *runMetrics) float64 {
	return float64(m.v.expected-m.v.misses) / float64(m.to-m.from+1)
}}

// topologies prints the suite's scenarios side by side with Redis CPU per
// master: the same jobs over a cluster of 1 and of n masters.
func (r suiteResult) topologies() {
	if r.suite.quorum {
		fmt.Printf("\nQuorum mode: every claim, finish and skip goes to each of the independent masters and needs a majority; a miss counts as recorded when a majority of the masters hold its record. Cells: median [min-max]; per master: medians.\n\n")
	} else {
		fmt.Printf("\nTopologies: the same jobs on Redis Clusters of 1 and more masters. A script cannot span hash slots in a cluster, so each claim is its own EVALSHA on its job's {job}-tagged keys (the cluster client pipelines them per master); the work-sharing beat's {live} keys are on one master. Cells: median [min-max]; per master: medians.\n\n")
	}
	cols := []column{colRate, colDups, colMisses, colUnrecorded, colP50, colP99, colCmds, colRedisCPU}
	fmt.Printf("| scenario |")
	for _, c := range cols {
		fmt.Printf(" %s |", c.name)
	}
	fmt.Printf(" Redis CPU / firing, per master | Redis CPU, per master |\n| --- |%s ---: | ---: |\n", strings.Repeat(" ---: |", len(cols)))
	for _, sc := range r.suite.scenarios() {
		runs := r.runs[sc]
		fmt.Printf("| %v |", sc)
		for _, c := range cols {
			fmt.Printf(" %s |", cell(runs, c))
		}
		var perFiring, perCore []string
		for i := range len(runs[0].masterCPU) {
			_, us, _ := summary(runs, column{get: func(m *runMetrics) float64 { return float64(m.masterCPU[i].Microseconds()) / m.firings() }})
			_, core, _ := summary(runs, column{get: func(m *runMetrics) float64 { return 100 * m.masterCPU[i].Seconds() / m.seconds }})
			perFiring = append(perFiring, fmt.Sprintf("%.1f", us))
			perCore = append(perCore, fmt.Sprintf("%.1f", core))
		}
		fmt.Printf(" %s us | %s %% core |\n", strings.Join(perFiring, " / "), strings.Join(perCore, " / "))
	}
}
