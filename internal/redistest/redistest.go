// Package redistest starts real redis-server processes on free loopback
// ports for tests, and injects faults into them: kill, pause, resume,
// restart on the same data directory, stop, a shifted wall clock
// (Options.ClockOffset), and a TCP proxy that holds, delays or cuts traffic
// (Proxy).
//
// A missing redis-server binary is a hard failure that names the install
// command; tests of redcron's promises never skip for lack of Redis.
package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint is the command that installs redis-server on Debian.
const InstallHint = "apt-get update && apt-get install -y redis-server"

// startTimeout bounds how long a server may take to answer PING after start.
const startTimeout = 10 * time.Second

// ErrNoBinary is returned when redis-server cannot be found on PATH.
var ErrNoBinary = errors.New("redistest: redis-server not found on PATH; install it with: " + InstallHint)

// Options configure a server. The zero value starts a plain, non-persistent
// server with no password.
type Options struct {
	// AOF turns on the append-only file with appendfsync always, so that a
	// restart on the same directory keeps every acknowledged write.
	AOF bool
	// Password sets requirepass for the default user.
	Password string
	// Username and UserPassword create an ACL user with all permissions and
	// turn the default user off.
	Username     string
	UserPassword string
	// Args are extra redis-server arguments, such as "--maxmemory", "10mb".
	Args []string
	// Dir is the data directory; default a fresh temporary directory.
	Dir string
	// Cluster starts the node with cluster-enabled (see StartCluster).
	Cluster bool
	// ClockOffset, when non-zero, shifts the server's wall clock (TIME, key
	// expiry) by this much from the machine's; it keeps ticking. The server
	// runs with libfaketime preloaded (Debian's faketime package; see
	// ErrNoFaketime) and with glibc's allocator instead of jemalloc. Its
	// monotonic clock is not shifted. Restart keeps the offset.
	ClockOffset time.Duration
	// TLS, when set, makes the server speak TLS only, on its one port
	// (plain TCP is off), with the PKI's server certificate; Client, URL
	// (rediss://) and the readiness check use the PKI's CA.
	TLS *PKI
	// TLSAuthClients makes a TLS server require a client certificate
	// signed by the PKI's CA (tls-auth-clients yes). Default: not required.
	TLSAuthClients bool

	// sentinelConf, when set, starts a Sentinel with this configuration
	// file instead of a data server (see StartSentinel).
	sentinelConf string
}

// Server is one redis-server process bound to 127.0.0.1.
type Server struct {
	opts Options
	port int
	bin  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has been reaped
	paused bool
	ownDir bool
}

// Start starts a server for the test and stops it in t.Cleanup. It fails the
// test (never skips) when redis-server is missing or does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := StartServer(opts)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartServer starts a server outside of a test, as in TestMain; the caller
// must call Stop. Without opts.Dir it makes and later removes a temporary one.
func StartServer(opts Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNoBinary
	}
	if opts.ClockOffset != 0 {
		if err := lookFaketime(); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, bin: bin}
	if s.opts.Dir == "" {
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, fmt.Errorf("redistest: temp dir: %w", err)
		}
		s.opts.Dir, s.ownDir = dir, true
	}
	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		if lastErr = s.launch(); lastErr == nil {
			return s, nil
		}
	}
	s.cleanupDir()
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redistest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) args() []string {
	if s.opts.sentinelConf != "" {
		return []string{s.opts.sentinelConf, "--sentinel",
			"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port), "--dir", s.opts.Dir,
			"--daemonize", "no", "--loglevel", "warning",
			"--logfile", filepath.Join(s.opts.Dir, "redis.log")}
	}
	a := []string{"--bind", "127.0.0.1"}
	if s.opts.TLS != nil {
		a = append(a, s.opts.TLS.tlsArgs(strconv.Itoa(s.port), s.opts.TLSAuthClients)...)
	} else {
		a = append(a, "--port", strconv.Itoa(s.port))
	}
	a = append(a,
		"--dir", s.opts.Dir,
		"--save", "",
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--loglevel", "warning",
		"--logfile", filepath.Join(s.opts.Dir, "redis.log"),
		// A replica's first sync starts at once, not 5s later.
		"--repl-diskless-sync-delay", "0",
	)
	if s.opts.AOF {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Cluster {
		a = append(a, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.opts.Dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	if s.opts.Username != "" {
		a = append(a, "--user", "default", "off", "--user", s.opts.Username, "on", ">"+s.opts.UserPassword, "~*", "&*", "+@all")
	}
	return append(a, s.opts.Args...)
}

// launch starts the process on s.port and waits until it answers PING.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin, s.args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	offset := s.opts.ClockOffset != 0
	if offset {
		cmd.Env = faketimeEnv(s.opts.ClockOffset)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		if offset {
			removeFaketimeShm(cmd.Process.Pid)
		}
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.paused = cmd, done, false
	s.mu.Unlock()

	err := s.waitReady(done)
	if err == nil && offset {
		err = checkFaketimeLoaded(cmd.Process.Pid)
	}
	if err != nil {
		s.mu.Lock()
		if s.cmd == cmd {
			s.cmd = nil
		}
		s.mu.Unlock()
		_ = cmd.Process.Kill()
		<-done
		if offset {
			err = fmt.Errorf("%w (started with libfaketime, FAKETIME=%s)", err, faketimeSpec(s.opts.ClockOffset))
		}
		return err
	}
	return nil
}

func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	c := s.rawClient()
	defer c.Close()
	for time.Now().Before(deadline) {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.opts.Dir, "redis.log"))
			return fmt.Errorf("redistest: redis-server on port %d exited at start: %s", s.port, strings.TrimSpace(string(log)))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("redistest: redis-server on port %d did not answer PING within %s", s.port, startTimeout)
}

func (s *Server) rawClient() *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr: s.Addr(), Username: s.opts.Username, Password: s.password(),
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		MaxRetries: -1, PoolSize: 1, TLSConfig: s.tlsConfig(),
	})
}

// tlsConfig is the client TLS configuration of a TLS server, else nil.
func (s *Server) tlsConfig() *tls.Config {
	if s.opts.TLS == nil {
		return nil
	}
	return s.opts.TLS.ClientConfig()
}

func (s *Server) password() string {
	if s.opts.Username != "" {
		return s.opts.UserPassword
	}
	return s.opts.Password
}

// Addr is the server's "127.0.0.1:port"; it stays the same across Restart.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.opts.Dir }

// URL is a redis:// URL for the server (rediss:// for a TLS server), with
// credentials when set. A TLS client also needs the PKI's CA.
func (s *Server) URL() string {
	scheme := "redis"
	if s.opts.TLS != nil {
		scheme = "rediss"
	}
	switch {
	case s.opts.Username != "":
		return fmt.Sprintf("%s://%s:%s@%s/0", scheme, s.opts.Username, s.opts.UserPassword, s.Addr())
	case s.opts.Password != "":
		return fmt.Sprintf("%s://:%s@%s/0", scheme, s.opts.Password, s.Addr())
	}
	return scheme + "://" + s.Addr() + "/0"
}

// Client returns a go-redis client for the server with short timeouts,
// closed in t.Cleanup. It has the settings the locker needs (no retries of
// its own, calls bounded by their context), so a test may claim with it.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr(), Username: s.opts.Username, Password: s.password(),
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, ContextTimeoutEnabled: true, TLSConfig: s.tlsConfig(),
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("redistest: server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redistest: signal %v: %w", sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		s.paused = true
	case syscall.SIGCONT:
		s.paused = false
	}
	return nil
}

// Pause stops the process with SIGSTOP: connections stay open, nothing answers.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

// Kill ends the process with SIGKILL and waits for it; data not yet on disk
// is lost. Restart brings it back on the same port and directory.
func (s *Server) Kill() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return nil
}

// Restart kills the process if it runs and starts a new one on the same port
// and data directory (with AOF, every acknowledged write survives).
func (s *Server) Restart() error {
	if err := s.Kill(); err != nil {
		return err
	}
	var err error
	// The port was ours a moment ago; TIME_WAIT does not block a listener,
	// but give a racing process a few chances.
	for range 20 {
		if err = s.launch(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Stop kills the process (resuming it first if paused) and removes a data
// directory that StartServer created. It is safe to call more than once.
func (s *Server) Stop() {
	s.mu.Lock()
	paused := s.paused
	s.mu.Unlock()
	if paused {
		_ = s.Resume()
	}
	_ = s.Kill()
	s.cleanupDir()
}

func (s *Server) cleanupDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.opts.Dir)
		s.ownDir = false
	}
}
