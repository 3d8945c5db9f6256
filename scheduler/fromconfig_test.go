package scheduler

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/redisconn"
)

// TestFromConfig: the one constructor takes the cluster settings every
// replica must share from the file (or their defaults when the file is
// silent), refuses options that contradict them, dials the redis: block
// with the locker's client settings, and claims under the file's prefix.
func TestFromConfig(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	parse := func(t *testing.T, src string) *jobs.Config {
		t.Helper()
		env := func(k string) (string, bool) {
			if k == "URL" {
				return srv.URL(), true
			}
			return "", false
		}
		cfg, err := jobs.Parse("jobs.yaml", []byte(src), env)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse(t, `
redis: {url: "${URL}", prefix: shared, max_clock_skew: 1s}
shutdown_grace: 3s
jobs:
  tick: {schedule: "* * * * * *", func: `+fn+`}
`)
	for _, tc := range []struct {
		name string
		opts Options
		err  error
	}{
		{"options repeat the file", Options{Prefix: "shared", MaxClockSkew: time.Second, ShutdownGrace: 3 * time.Second}, nil},
		{"another prefix", Options{Prefix: "mine"}, ErrConfigMismatch},
		{"another clock skew", Options{MaxClockSkew: 5 * time.Second}, ErrConfigMismatch},
		{"another grace", Options{ShutdownGrace: time.Minute}, ErrConfigMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := FromConfig(cfg, tc.opts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("FromConfig: got %v, want %v", err, tc.err)
			}
			if s != nil {
				_ = s.Close()
			}
		})
	}
	t.Run("defaults where the file is silent", func(t *testing.T) {
		silent := parse(t, "redis: {url: \"${URL}\"}\njobs:\n  a: {schedule: '@hourly', func: "+fn+"}\n")
		s, err := FromConfig(silent, Options{Prefix: "redcron", MaxClockSkew: DefaultMaxClockSkew})
		if err != nil {
			t.Fatalf("options equal to the defaults of a silent file: %v", err)
		}
		_ = s.Close()
		if _, err := FromConfig(silent, Options{Prefix: "other"}); !errors.Is(err, ErrConfigMismatch) {
			t.Fatalf("another prefix than a silent file's default: got %v, want ErrConfigMismatch", err)
		}
		noRedis := parse(t, "jobs:\n  a: {schedule: '@hourly', func: "+fn+"}\n")
		if _, err := FromConfig(noRedis, Options{}); !errors.Is(err, redisconn.ErrNoRedis) {
			t.Fatalf("no redis configured: got %v, want redisconn.ErrNoRedis", err)
		}
	})
	t.Run("runs under the file's prefix", func(t *testing.T) {
		logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
		s, err := FromConfig(cfg, Options{Replica: "embedded", Logger: &logger})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.opts.Prefix != "shared" || s.opts.MaxClockSkew != time.Second || s.opts.ShutdownGrace != 3*time.Second {
			t.Fatalf("options: got prefix %q, skew %v, grace %v; want the file's", s.opts.Prefix, s.opts.MaxClockSkew, s.opts.ShutdownGrace)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) > 0 })
		if err := s.Ready(ctx); err != nil {
			t.Errorf("Ready: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if keys := srv.Client(t).Keys(context.Background(), "shared:{tick}:*").Val(); len(keys) == 0 {
			t.Errorf("no key under the file's prefix \"shared\"")
		}
	})
}

// TestWrappers: Options.Wrappers wrap every job's run, with the run's
// jobs.Run, inside the scheduler's own timeout and retries.
func TestWrappers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	l := &ledger{}
	js := []*jobs.Job{testJob(t, "wrapped", "* * * * * *", registerLedgerFunc(l, behaviour{fail: 1}), func(j *jobs.Job) {
		j.Retry = jobs.Retry{Attempts: 2, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	})}
	var calls atomic.Int32
	var seen atomic.Value
	wrap := func(next RunFunc) RunFunc {
		return func(ctx context.Context, r jobs.Run) error {
			calls.Add(1)
			seen.Store(r.Job)
			return next(ctx, r)
		}
	}
	startInstance(t, srv, js, Options{Replica: "r0", Wrappers: []Wrapper{wrap}})
	waitFor(t, 5*time.Second, func() bool { return len(l.snapshot()) >= 2 })
	if n := calls.Load(); n < 2 {
		t.Errorf("wrapper calls: got %d, want one per attempt (>= 2)", n)
	}
	if got := seen.Load(); got != "wrapped" {
		t.Errorf("wrapper saw job %v, want wrapped", got)
	}
}
