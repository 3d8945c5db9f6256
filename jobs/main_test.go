package jobs

import (
	"bytes"
	"context"

	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// testArgs is the args type of the "test.echo" function registered below.
type testArgs struct {
	Message string             `yaml:"message"`
	Count   int                `yaml:"count"`
	Tags    []string           `yaml:"tags"`
	Nested  struct{ Deep int } `yaml:"nested"`
}

// calls records what test.echo received.
var calls = struct {
	sync.Mutex
	runs []Run
	args []testArgs
}{}

func TestMain(m *testing.M) {
	Register("test.echo", func(ctx context.Context, r Run, a testArgs) error {
		calls.Lock()
		defer calls.Unlock()
		calls.runs = append(calls.runs, r)
		calls.args = append(calls.args, a)
		return nil
	})
	Register("test.noargs", func(ctx context.Context, r Run, _ struct{}) error { return nil })
	Register("test.block", func(ctx context.Context, r Run, _ struct{}) error {
		<-ctx.Done()
		return context.Cause(ctx)
	})
	Register("test.panic", func(ctx context.Context, r Run, _ struct{}) error { panic("boom") })
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for a logger shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testLogger returns a JSON logger into a buffer.
func testLogger(t *testing.T) (zerolog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	return zerolog.New(buf), buf
}

// mustParse parses src or fails the test.
func mustParse(t *testing.T, src string, env map[string]string) *Config {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(src), mapEnv(env))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func mapEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}
