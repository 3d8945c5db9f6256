package scheduler

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redcron/redcron/scheduler/store"
)

// outcomes and reasons are every label value the counters start with, at
// zero, for each job: an alert on a series needs the series to exist. They
// are every outcome a run can end with and every reason a skip can have.
var (
	outcomeNames = [...]string{store.OutcomeOK, store.OutcomeError, store.OutcomeTimeout, store.OutcomePanic,
		store.OutcomeLeaseLost, store.OutcomeShutdown, store.OutcomeCanceled}
	reasonNames = [...]string{store.ReasonPaused, store.ReasonOverlap, store.ReasonOutage, store.ReasonLate,
		store.ReasonAborted, store.ReasonClock, store.ReasonSplit}
	outcomes = outcomeNames[:]
	reasons  = reasonNames[:]
)

// metrics are the scheduler's Prometheus collectors. Counts are this
// replica's (sum them over replicas); a skip is counted by the replica that
// recorded it, so the sum counts each skip once. The per-job series are
// kept by one collector (see jobsCollector).
type metrics struct {
	jobs        *jobsCollector
	replicas    prometheus.Gauge
	clockOffset prometheus.Gauge
	claimAhead  prometheus.Gauge
	stepIns     prometheus.Counter
	prevWaits   prometheus.Counter
	splitVotes  prometheus.Counter
	claimsShed  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: newJobsCollector(),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_replicas", Help: "Live replicas registered in Redis, as this replica last saw them.",
		}),
		stepIns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_share_step_ins_total", Help: "Firings this replica claimed for another that had not beaten since their slot (work sharing).",
		}),
		prevWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_share_prev_waits_total", Help: "Claims of this replica that Redis held back while a replica stepping in could still claim the job's slot before (work sharing).",
		}),
		splitVotes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_split_votes_total", Help: "Quorum claims of this replica whose votes split after the locker's retries, sent again by the scheduler.",
		}),
		claimsShed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redcron_claims_shed_total", Help: "Quorum claims of this replica given up unsent, as late, while its calls to the masters queued longer than half the time they had left (an overload).",
		}),
		clockOffset: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_clock_offset_seconds", Help: "Redis's clock minus this replica's, as last measured (TIME, corrected for the round trip).",
		}),
		claimAhead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redcron_claim_ahead_seconds", Help: "How long before their slot this replica sends its claims: 0.1 s, up to 0.5 s while claims are slow to be answered.",
		}),
	}
	if reg != nil {
		m.jobs = register(reg, m.jobs)
		m.replicas = register(reg, m.replicas)
		m.stepIns = register(reg, m.stepIns)
		m.prevWaits = register(reg, m.prevWaits)
		m.splitVotes = register(reg, m.splitVotes)
		m.claimsShed = register(reg, m.claimsShed)
		m.clockOffset = register(reg, m.clockOffset)
		m.claimAhead = register(reg, m.claimAhead)
	}
	return m
}

// forJob returns job's series, created at zero so that they exist before
// the first event.
func (m *metrics) forJob(job string) *jobMetrics { return m.jobs.forJob(job) }

// dropJob deletes a removed job's series (a reload), so that its gauges
// (last success) do not raise alerts for a job that no longer exists.
func (m *metrics) dropJob(job string) { m.jobs.drop(job) }

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
