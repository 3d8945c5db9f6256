package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFaketimeSpec(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "+10"},
		{-5 * time.Second, "-5"},
		{1500 * time.Millisecond, "+1.5"},
		{-250 * time.Millisecond, "-0.25"},
		{2 * time.Hour, "+7200"},
	} {
		if got := faketimeSpec(tc.d); got != tc.want {
			t.Errorf("faketimeSpec(%v): got %q, want %q", tc.d, got, tc.want)
		}
	}
}

// checkTime fails the test unless s's TIME is the local clock plus offset,
// within tol.
func checkTime(t *testing.T, s *Server, offset, tol time.Duration) {
	t.Helper()
	c := s.Client(t)
	before := time.Now()
	got, err := c.Time(context.Background()).Result()
	after := time.Now()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	lo, hi := before.Add(offset-tol), after.Add(offset+tol)
	if got.Before(lo) || got.After(hi) {
		t.Fatalf("TIME: got %s (local clock %+v), want within [%s, %s]",
			got.Format(time.RFC3339Nano), got.Sub(before), lo.Format(time.RFC3339Nano), hi.Format(time.RFC3339Nano))
	}
}

func TestClockOffset(t *testing.T) {
	for _, tc := range []struct {
		offset, tol time.Duration
	}{
		{10 * time.Second, time.Second},
		{-5 * time.Second, time.Second},
		{1500 * time.Millisecond, 250 * time.Millisecond},
	} {
		t.Run(faketimeSpec(tc.offset), func(t *testing.T) {
			ctx := context.Background()
			s := Start(t, Options{ClockOffset: tc.offset})
			checkTime(t, s, tc.offset, tc.tol)

			c := s.Client(t)
			if err := c.Set(ctx, "k", "v", 500*time.Millisecond).Err(); err != nil {
				t.Fatalf("SET k v PX 500: %v", err)
			}
			waitFor(t, "k to expire", func() bool { return c.Exists(ctx, "k").Val() == 0 })
		})
	}
}

// Kill, Restart and Pause act on redis-server itself, the offset survives a
// restart, and libfaketime's shared memory does not outlive a killed server.
func TestClockOffsetRestart(t *testing.T) {
	const offset = 10 * time.Second
	s := Start(t, Options{ClockOffset: offset})
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{fmt.Sprintf("sem.faketime_sem_%d", pid), fmt.Sprintf("faketime_shm_%d", pid)} {
		if _, err := os.Stat(filepath.Join("/dev/shm", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("/dev/shm/%s after Kill: got %v, want it removed", name, err)
		}
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	checkTime(t, s, offset, time.Second)
}

// Without faketime on PATH, a server with a clock offset fails and names the
// install command.
func TestClockOffsetNoFaketime(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(ErrNoBinary)
	}
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "redis-server")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	s, err := StartServer(Options{ClockOffset: time.Second})
	if s != nil {
		s.Stop()
	}
	if !errors.Is(err, ErrNoFaketime) || !strings.Contains(err.Error(), "apt-get install -y faketime") {
		t.Fatalf("StartServer with ClockOffset and no faketime: got %v, want ErrNoFaketime naming the install command", err)
	}
}
