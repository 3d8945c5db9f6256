package scheduler

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// jobsCollector keeps the per-job series in plain atomics and writes them
// out at scrape time. client_golang's vectors keep a metric object per
// series: with 100,000 jobs of twenty series each (two of them histograms)
// they took 1.2 GiB and 3 s to create; this takes about 150 bytes a job,
// and 80 more for each of its two histograms once it has one.
type jobsCollector struct {
	mu    sync.RWMutex
	byJob map[string]*jobMetrics

	runs, skips, claimErrors, fireLag, duration, lastSuccess, running, drift *prometheus.Desc
}

// Histogram buckets, in seconds.
var (
	fireLagBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	durationBuckets = []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}
)

func newJobsCollector() *jobsCollector {
	job := []string{"job"}
	return &jobsCollector{
		byJob:       map[string]*jobMetrics{},
		runs:        prometheus.NewDesc("redcron_runs_total", "Runs this replica started, by job and outcome.", []string{"job", "outcome"}, nil),
		skips:       prometheus.NewDesc("redcron_skipped_slots_total", "Slots whose skip this replica recorded, by job and reason (paused, overlap, outage, late, aborted, clock, split).", []string{"job", "reason"}, nil),
		claimErrors: prometheus.NewDesc("redcron_claim_errors_total", "Claims that failed with an I/O error (Redis unreachable), by job.", job, nil),
		fireLag:     prometheus.NewDesc("redcron_fire_lag_seconds", "Time from a slot's nominal instant to the start of its run (after jitter and claim), by job.", job, nil),
		duration:    prometheus.NewDesc("redcron_run_duration_seconds", "How long runs took, all attempts included, by job.", job, nil),
		lastSuccess: prometheus.NewDesc("redcron_job_last_success_timestamp_seconds", "Unix time of the last run of the job that this replica ran with outcome ok (max over replicas for the cluster's).", job, nil),
		running:     prometheus.NewDesc("redcron_running", "Runs of the job going on on this replica.", job, nil),
		drift:       prometheus.NewDesc("redcron_config_drift", "1 when the live replicas define the job differently (or not all of them define it).", job, nil),
	}
}

// forJob returns job's series, created at zero if new.
func (c *jobsCollector) forJob(job string) *jobMetrics {
	c.mu.Lock()
	defer c.mu.Unlock()
	jm := c.byJob[job]
	if jm == nil {
		jm = &jobMetrics{}
		c.byJob[job] = jm
	}
	return jm
}

// get returns job's series, or nil.
func (c *jobsCollector) get(job string) *jobMetrics {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byJob[job]
}

// drop forgets job's series.
func (c *jobsCollector) drop(job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byJob, job)
}

// Describe implements prometheus.Collector.
func (c *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.runs, c.skips, c.claimErrors, c.fireLag, c.duration, c.lastSuccess, c.running, c.drift} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	type series struct {
		job string
		jm  *jobMetrics
	}
	c.mu.RLock()
	all := make([]series, 0, len(c.byJob))
	for job, jm := range c.byJob {
		all = append(all, series{job, jm})
	}
	c.mu.RUnlock()
	for _, sr := range all {
		j, jm := sr.job, sr.jm
		for i, o := range outcomes {
			ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(jm.runs[i].Load()), j, o)
		}
		for i, r := range reasons {
			ch <- prometheus.MustNewConstMetric(c.skips, prometheus.CounterValue, float64(jm.skips[i].Load()), j, r)
		}
		ch <- prometheus.MustNewConstMetric(c.claimErrors, prometheus.CounterValue, float64(jm.claimErrors.Load()), j)
		ch <- jm.fireLag.metric(c.fireLag, fireLagBuckets, j)
		ch <- jm.duration.metric(c.duration, durationBuckets, j)
		ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, jm.lastSuccess.get(), j)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(jm.running.Load()), j)
		ch <- prometheus.MustNewConstMetric(c.drift, prometheus.GaugeValue, jm.drift.get(), j)
	}
}

// jobMetrics are one job's series (the job's name is their key in
// jobsCollector.byJob).
type jobMetrics struct {
	runs        [len(outcomeNames)]counter // by outcome, in outcomes' order
	skips       [len(reasonNames)]counter  // by reason, in reasons' order
	claimErrors counter
	fireLag     lazyHistogram // fireLagBuckets
	duration    lazyHistogram // durationBuckets
	lastSuccess gauge
	running     atomic.Int32
	drift       gauge
}

// run is the counter of runs that ended with outcome (outcomes lists every
// outcome a run can have).
func (jm *jobMetrics) run(outcome string) *counter {
	return &jm.runs[slices.Index(outcomes, outcome)]
}

// observeFireLag adds a run's fire lag, in seconds.
func (jm *jobMetrics) observeFireLag(v float64) { jm.fireLag.observe(fireLagBuckets, v) }

// observeDuration adds a run's duration, in seconds.
func (jm *jobMetrics) observeDuration(v float64) { jm.duration.observe(durationBuckets, v) }

// skip is the counter of slots skipped for reason (reasons lists them all).
func (jm *jobMetrics) skip(reason string) *counter {
	return &jm.skips[slices.Index(reasons, reason)]
}

// counter is a monotonic count. Per-job counts are 32 bits (with 100,000
// jobs every word counts): one job's count grows at most about once a
// second (a slot a second, or a person's manual runs), which takes 136
// years to wrap; Prometheus would read a wrap as a counter reset.
type counter struct{ atomic.Uint32 }

// Inc adds one.
func (c *counter) Inc() { c.Add(1) }

// gauge is a float64 that is set.
type gauge struct{ bits atomic.Uint64 }

func (g *gauge) Set(v float64) { g.bits.Store(math.Float64bits(v)) }
func (g *gauge) get() float64  { return math.Float64frombits(g.bits.Load()) }

// lazyHistogram is a histogram allocated at its first observation: most
// of 100,000 jobs are hourly or rarer, and two histograms would more than
// double what each job's series cost (14 MiB of live heap at 100,000
// jobs). Until then it is written out with every count at zero, so that
// the series exist from the start as the counters do.
type lazyHistogram struct{ p atomic.Pointer[histogram] }

// observe adds v, bounds being the histogram's buckets (the same at every
// call for one lazyHistogram).
func (l *lazyHistogram) observe(bounds []float64, v float64) {
	h := l.p.Load()
	if h == nil {
		l.p.CompareAndSwap(nil, &histogram{})
		h = l.p.Load() // ours, or one that a concurrent observe stored first
	}
	h.observe(bounds, v)
}

func (l *lazyHistogram) metric(d *prometheus.Desc, bounds []float64, job string) prometheus.Metric {
	h := l.p.Load()
	if h == nil {
		h = &noObservations
	}
	return h.metric(d, bounds, job)
}

// noObservations is the histogram of every lazyHistogram not yet observed
// (never written to).
var noObservations histogram

// histogram counts observations into fixed buckets (one allocation per
// histogram). Its counts are 32 bits, as counter's.
type histogram struct {
	counts [maxBuckets + 1]atomic.Uint32 // per bucket (not cumulative); counts[len(bounds)] is +Inf
	sum    atomic.Uint64                 // float64 bits
}

// maxBuckets is the most bounds a per-job histogram has.
const maxBuckets = 15

// observe adds v.
func (h *histogram) observe(bounds []float64, v float64) {
	h.counts[sort.SearchFloat64s(bounds, v)].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) metric(d *prometheus.Desc, bounds []float64, job string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += uint64(h.counts[i].Load())
		buckets[b] = cum
	}
	cum += uint64(h.counts[len(bounds)].Load())
	return prometheus.MustNewConstHistogram(d, cum, math.Float64frombits(h.sum.Load()), buckets, job)
}
