package scheduler

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcron/redcron/scheduler/store"
)

// outcomes and reasons are every label value the counters start with, at
// zero, for each job: an alert on a series needs the series to exist.
var (
	outcomes = []string{store.OutcomeOK, store.OutcomeError, store.OutcomeTimeout, store.OutcomePanic,
		store.OutcomeLeaseLost, store.OutcomeShutdown, store.OutcomeCanceled}
	reasons = []string{store.ReasonPaused, store.ReasonOverlap, store.ReasonOutage, store.ReasonLate,
		store.ReasonAborted, store.ReasonClock, store.ReasonSplit}
)

// metrics are the scheduler's Prometheus collectors. Counts are this
// replica's (sum them over replicas); a skip is counted by the replica that
// recorded it, so the sum counts each skip once.
type metrics struct {
	runs        *prometheus.CounterVec   // job, outcome
	skips       *prometheus.CounterVec   // job, reason
	claimErrors *prometheus.CounterVec   // job
	fireLag     *prometheus.HistogramVec // job
	duration    *prometheus.HistogramVec // job
	lastSuccess *prometheus.GaugeVec     // job
	running     *prometheus.GaugeVec     // job
	drift       *prometheus.GaugeVec     // job
	replicas    prometheus.Gauge
	clockOffset prometheus.Gauge
	stepIns     prometheus.Counter
	splitVotes  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_runs_total", Help: "Runs this replica started, by job and outcome.",
		}, []string{"job", "outcome"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_skipped_slots_total", Help: "Slots whose skip this replica recorded, by job and reason (paused, overlap, outage, late, aborted, clock, split).",
		}, []string{"job", "reason"}),
		claimErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redcron_claim_errors_total", Help: "Claims that failed with an I/O error (Redis unreachable), by job.",
		}, []string{"job"}),
		fireLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "redcron_fire_lag_seconds", Help: "Time from a slot's nominal instant to the start of its run (after jitter and claim), by job.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"job"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "redcron_run_duration_seconds", Help: "How long runs took, all attempts included, by job.",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redcron_job_last_success_timestamp_seconds", Help: "Unix time of the last run of the job that this replica ran with outcome ok (max over replicas for the cluster's).",
		}, []string{"job"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redcron_running", Help: "Runs of the job going on on this replica.",
		}, []string{"job"}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redcron_config_drift", Help: "1 when the live replicas define the job differently (or not all of them define it).",
		}, []string{"job"}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_replicas", Help: "Live replicas registered in Redis, as this replica last saw them.",
		}),
		stepIns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_share_step_ins_total", Help: "Firings this replica claimed for another that had not beaten since their slot (work sharing).",
		}),
		splitVotes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_split_votes_total", Help: "Quorum claims of this replica whose votes split after the locker's retries, sent again by the scheduler.",
		}),
		clockOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_clock_offset_seconds", Help: "Redis's clock minus this replica's, as last measured (TIME, corrected for the round trip).",
		}),
	}
	if reg != nil {
		m.runs = register(reg, m.runs)
		m.skips = register(reg, m.skips)
		m.claimErrors = register(reg, m.claimErrors)
		m.fireLag = register(reg, m.fireLag)
		m.duration = register(reg, m.duration)
		m.lastSuccess = register(reg, m.lastSuccess)
		m.running = register(reg, m.running)
		m.drift = register(reg, m.drift)
		m.replicas = register(reg, m.replicas)
		m.stepIns = register(reg, m.stepIns)
		m.splitVotes = register(reg, m.splitVotes)
		m.clockOffset = register(reg, m.clockOffset)
	}
	return m
}

// jobMetrics are one job's series, looked up once: a label lookup per
// firing was a tenth of a busy replica's CPU.
type jobMetrics struct {
	job         string
	all         *metrics
	runs        map[string]prometheus.Counter // by outcome
	skips       map[string]prometheus.Counter // by reason
	claimErrors prometheus.Counter
	fireLag     prometheus.Observer
	duration    prometheus.Observer
	lastSuccess prometheus.Gauge
	running     prometheus.Gauge
	drift       prometheus.Gauge
}

// forJob creates job's series at zero, so that they exist before the first
// event, and returns them.
func (m *metrics) forJob(job string) *jobMetrics {
	jm := &jobMetrics{
		job:         job,
		all:         m,
		runs:        make(map[string]prometheus.Counter, len(outcomes)),
		skips:       make(map[string]prometheus.Counter, len(reasons)),
		claimErrors: m.claimErrors.WithLabelValues(job),
		fireLag:     m.fireLag.WithLabelValues(job),
		duration:    m.duration.WithLabelValues(job),
		lastSuccess: m.lastSuccess.WithLabelValues(job),
		running:     m.running.WithLabelValues(job),
		drift:       m.drift.WithLabelValues(job),
	}
	for _, o := range outcomes {
		jm.runs[o] = m.runs.WithLabelValues(job, o)
	}
	for _, r := range reasons {
		jm.skips[r] = m.skips.WithLabelValues(job, r)
	}
	return jm
}

// run is the counter of runs that ended with outcome.
func (jm *jobMetrics) run(outcome string) prometheus.Counter {
	if c, ok := jm.runs[outcome]; ok {
		return c
	}
	return jm.all.runs.WithLabelValues(jm.job, outcome)
}

// skip is the counter of slots skipped for reason.
func (jm *jobMetrics) skip(reason string) prometheus.Counter {
	if c, ok := jm.skips[reason]; ok {
		return c
	}
	return jm.all.skips.WithLabelValues(jm.job, reason)
}

// dropJob deletes a removed job's series (a reload), so that its gauges
// (last success) do not raise alerts for a job that no longer exists.
func (m *metrics) dropJob(job string) {
	l := prometheus.Labels{"job": job}
	m.runs.DeletePartialMatch(l)
	m.skips.DeletePartialMatch(l)
	m.claimErrors.DeletePartialMatch(l)
	m.fireLag.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.running.DeletePartialMatch(l)
	m.drift.DeletePartialMatch(l)
}

// register registers c on reg, or returns the collector already there (so
// several schedulers in one process can share a registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
