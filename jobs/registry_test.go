package jobs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", want)
		}
		if msg, _ := r.(string); !strings.Contains(msg, want) {
			t.Errorf("panic %v, want one containing %q", r, want)
		}
	}()
	f()
}

func TestRegisterTwicePanics(t *testing.T) {
	Register("test.once", func(context.Context, Run, struct{}) error { return nil })
	mustPanic(t, `"test.once" registered twice`, func() {
		Register("test.once", func(context.Context, Run, int) error { return nil })
	})
	if !slices.Contains(Registered(), "test.once") {
		t.Errorf("Registered() = %v, want it to hold test.once", Registered())
	}
}

func TestRegisterRefusesBadInput(t *testing.T) {
	mustPanic(t, "bad function name", func() { Register("", func(context.Context, Run, struct{}) error { return nil }) })
	mustPanic(t, "bad function name", func() { Register("has space", func(context.Context, Run, struct{}) error { return nil }) })
	mustPanic(t, "nil function", func() { Register[struct{}]("test.nil", nil) })
}

func TestFuncPanicIsAnOutcome(t *testing.T) {
	cfg := mustParse(t, "jobs:\n  p: {schedule: '@hourly', func: test.panic}\n", nil)
	log, buf := testLogger(t)
	err := cfg.Jobs[0].Run(t.Context(), Run{Logger: log})
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Run = %v, want ErrPanic with the panic value", err)
	}
	if !strings.Contains(buf.String(), "job function panicked") {
		t.Errorf("log = %s, want the panic logged", buf.String())
	}
}

func TestFuncSeesCancellationCause(t *testing.T) {
	errLease := errors.New("lease lost (test)")
	cfg := mustParse(t, "jobs:\n  b: {schedule: '@hourly', func: test.block}\n", nil)
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errLease)
	// Already cancelled: not started.
	if err := cfg.Jobs[0].Run(ctx, Run{}); !errors.Is(err, errLease) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want the cause and context.Canceled", err)
	}
	ctx2, cancel2 := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() { done <- cfg.Jobs[0].Run(ctx2, Run{}) }()
	cancel2(errLease)
	if err := <-done; !errors.Is(err, errLease) || !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want the cause and context.Canceled", err)
	}
}

func TestRunUnknownKind(t *testing.T) {
	if err := (&Job{Name: "z"}).Run(t.Context(), Run{}); !errors.Is(err, ErrNoKind) {
		t.Errorf("Run = %v, want ErrNoKind", err)
	}
	if err := (&Job{Name: "z", Kind: KindFunc, Func: "not.registered"}).Run(t.Context(), Run{}); !errors.Is(err, ErrUnknownFunc) {
		t.Errorf("Run = %v, want ErrUnknownFunc", err)
	}
}
