package scheduler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
)

// TestTLSFromConfig: a replica built from a jobs.yaml whose redis: block
// names a private CA and a client certificate claims and runs its job on a
// Redis that speaks only TLS and requires client certificates.
func TestTLSFromConfig(t *testing.T) {
	t.Parallel()
	pki := redistest.GeneratePKI(t)
	srv := redistest.Start(t, redistest.Options{TLS: pki, TLSAuthClients: true})
	l := &ledger{}
	fn := registerLedgerFunc(l, behaviour{})
	src := `
redis:
  url: ` + srv.URL() + `
  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem}
jobs:
  tick: {schedule: "* * * * * *", func: ` + fn + `}
`
	// Relative paths: next to the config file, as an operator writes them.
	cfg, err := jobs.Parse(filepath.Join(pki.Dir, "jobs.yaml"), []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromConfig(cfg, Options{Replica: "tls", Logger: testLogger(t, testLogLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(l.snapshot()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
	es := l.snapshot()
	if len(es) == 0 {
		t.Fatalf("no run within 5s over TLS")
	}
	if e := es[0]; e.job != "tick" || e.fence < 1 {
		t.Errorf("first run: got job %q fence %d, want tick with a fence", e.job, e.fence)
	}
}
