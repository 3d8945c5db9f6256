package scheduler

import (
	"math"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestJobsCollector checks the per-job series written at scrape time:
// cumulative buckets, the count (+Inf) and sum, and the 32-bit counters.
func TestJobsCollector(t *testing.T) {
	for _, b := range [][]float64{fireLagBuckets, durationBuckets} {
		if len(b) > maxBuckets {
			t.Fatalf("a per-job histogram has %d bounds, want at most maxBuckets = %d", len(b), maxBuckets)
		}
	}
	c := newJobsCollector()
	jm := c.forJob("a")
	if again := c.forJob("a"); again != jm {
		t.Fatalf("forJob twice: got a new series, want the same")
	}
	for _, v := range []float64{0.0005, 0.003, 0.003, 0.2, 120} { // the last past every bound
		jm.observeFireLag(v)
	}
	jm.observeDuration(2)
	jm.run("ok").Inc()
	jm.run("ok").Inc()
	jm.skip("late").Inc()
	jm.running.Add(1)

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	lag := byName["redcron_fire_lag_seconds"].GetMetric()[0].GetHistogram()
	if got, want := lag.GetSampleCount(), uint64(5); got != want {
		t.Errorf("fire lag count: got %d, want %d", got, want)
	}
	if got, want := lag.GetSampleSum(), 0.0005+0.003+0.003+0.2+120; math.Abs(got-want) > 1e-9 {
		t.Errorf("fire lag sum: got %v, want %v", got, want)
	}
	wantCum := map[float64]uint64{.001: 1, .0025: 1, .005: 3, .1: 3, .25: 4, 60: 4}
	for _, b := range lag.GetBucket() {
		if want, ok := wantCum[b.GetUpperBound()]; ok && b.GetCumulativeCount() != want {
			t.Errorf("fire lag bucket le=%v: got %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	if got, want := byName["redcron_run_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(), uint64(1); got != want {
		t.Errorf("duration count: got %d, want %d", got, want)
	}
	counts := map[string]float64{}
	for _, m := range byName["redcron_runs_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				counts[l.GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["ok"] != 2 || counts["error"] != 0 {
		t.Errorf("runs: got ok %v, error %v; want 2, 0", counts["ok"], counts["error"])
	}
	if got := byName["redcron_running"].GetMetric()[0].GetGauge().GetValue(); got != 1 {
		t.Errorf("running: got %v, want 1", got)
	}
}

// TestLazyHistogram checks the histograms allocated at their first
// observation: before it a job's histograms are written out at zero with
// every bucket, and observations racing to allocate one all count.
func TestLazyHistogram(t *testing.T) {
	t.Run("at zero before the first observation", func(t *testing.T) {
		c := newJobsCollector()
		jm := c.forJob("idle")
		if jm.fireLag.p.Load() != nil || jm.duration.p.Load() != nil {
			t.Fatalf("a new job's histograms: got allocated, want nil until observed")
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		for _, want := range []struct {
			name    string
			buckets int
		}{{"redcron_fire_lag_seconds", len(fireLagBuckets)}, {"redcron_run_duration_seconds", len(durationBuckets)}} {
			var h *dto.Histogram
			for _, mf := range mfs {
				if mf.GetName() == want.name && len(mf.GetMetric()) == 1 {
					h = mf.GetMetric()[0].GetHistogram()
				}
			}
			if h == nil {
				t.Fatalf("%s: got no series, want one at zero", want.name)
			}
			if h.GetSampleCount() != 0 || h.GetSampleSum() != 0 || len(h.GetBucket()) != want.buckets {
				t.Errorf("%s: got count %d, sum %v, %d buckets; want 0, 0, %d", want.name, h.GetSampleCount(), h.GetSampleSum(), len(h.GetBucket()), want.buckets)
			}
		}
	})
	t.Run("racing first observations", func(t *testing.T) {
		var l lazyHistogram
		const n = 64
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.observe(fireLagBuckets, 0.003)
			}()
		}
		wg.Wait()
		if got := l.p.Load().counts[2].Load(); got != n {
			t.Errorf("observations counted: got %d, want %d", got, n)
		}
	})
}
