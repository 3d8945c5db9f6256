package redistest

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// proxyClient is a go-redis client through p that does not retry, closed in
// t.Cleanup.
func proxyClient(t *testing.T, p *Proxy, readTimeout time.Duration) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(p.URL())
	if err != nil {
		t.Fatalf("parse %s: %v", p.URL(), err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, readTimeout, time.Second
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond every 10 ms for up to 10 s and fails the test with what
// when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestDirectionString(t *testing.T) {
	for _, tc := range []struct {
		d    Direction
		want string
	}{{ToServer, "ToServer"}, {ToClient, "ToClient"}, {Both, "Both"}, {0, "Direction(0)"}} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("Direction(%d).String(): got %q, want %q", int(tc.d), got, tc.want)
		}
	}
}

func TestNewProxyTarget(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:6379", true},
		{"localhost:6379", true},
		{"[::1]:6379", true},
		{"10.1.2.3:6379", false},
		{"example.com:6379", false},
		{"127.0.0.1", false},
	} {
		p, err := NewProxy(tc.target)
		if got := err == nil; got != tc.ok {
			t.Errorf("NewProxy(%q): got error %v, want ok=%v", tc.target, err, tc.ok)
		}
		if p != nil {
			p.Close()
		}
	}
}

func TestProxyPing(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"password", Options{Password: "s3cret"}},
		{"acl user", Options{Username: "app", UserPassword: "pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, tc.opts)
			p := StartProxyFor(t, s)
			if !strings.HasPrefix(p.URL(), "redis://") || !strings.HasSuffix(p.URL(), p.Addr()+"/0") {
				t.Errorf("URL: got %q, want redis://...%s/0", p.URL(), p.Addr())
			}
			c := proxyClient(t, p, time.Second)
			if err := c.Ping(context.Background()).Err(); err != nil {
				t.Fatalf("ping through proxy: %v", err)
			}
			if got := p.Conns(); got != 1 {
				t.Errorf("Conns: got %d, want 1", got)
			}
			// The proxy counts a chunk once its write returned, so a count
			// can still change after the client has its reply (the PING,
			// 14 bytes, counted after the PONG arrived): read again until
			// the three agree, for 2 s at most.
			var up, down, both int64
			for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				up, down, both = p.Bytes(ToServer), p.Bytes(ToClient), p.Bytes(Both)
				if both == up+down || time.Now().After(end) {
					break
				}
			}
			if up == 0 || down == 0 || both != up+down {
				t.Errorf("Bytes: got ToServer %d, ToClient %d, Both %d; want both > 0 and Both their sum", up, down, both)
			}
		})
	}
}

// Replies held past the client's read timeout: the server has run the
// command, the client does not know.
func TestProxyHoldReplies(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	direct := s.Client(t)
	p := StartProxyFor(t, s)
	c := proxyClient(t, p, 200*time.Millisecond)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}

	p.Hold(ToClient)
	start := time.Now()
	if err := c.Incr(ctx, "k").Err(); !isTimeout(err) {
		t.Fatalf("INCR with replies held: got %v, want a read timeout", err)
	}
	waitFor(t, "the server to run INCR k", func() bool { return direct.Get(ctx, "k").Val() == "1" })
	time.Sleep(900*time.Millisecond - time.Since(start))
	p.Release(ToClient)

	got, err := c.Incr(ctx, "k").Result()
	if err != nil || got != 2 {
		t.Fatalf("INCR after release: got %d, %v; want 2", got, err)
	}
}

// Release forwards everything held, in order, on a connection that stayed.
func TestProxyReleaseInOrder(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	direct := s.Client(t)
	p := StartProxy(t, s.Addr())
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	p.Hold(ToClient)
	if _, err := io.WriteString(conn, "INCR n\r\nINCR n\r\nINCR n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to run three INCR n", func() bool { return direct.Get(ctx, "n").Val() == "3" })
	waitFor(t, "the three replies to be held", func() bool { return p.Pending(ToClient) == len(":1\r\n:2\r\n:3\r\n") })
	_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); n != 0 || !isTimeout(err) {
		t.Fatalf("read while held: got %d bytes, %v; want 0 and a timeout", n, err)
	}

	p.Release(ToClient)
	want := ":1\r\n:2\r\n:3\r\n"
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
		t.Fatalf("after release: got %q, %v; want %q", got, err, want)
	}
	if got := p.Pending(Both); got != 0 {
		t.Errorf("Pending after release: got %d, want 0", got)
	}
}

// Requests held: the command does not run until Release.
func TestProxyHoldRequests(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	direct := s.Client(t)
	p := StartProxyFor(t, s)
	c := proxyClient(t, p, 10*time.Second)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}

	p.Hold(ToServer)
	res := make(chan *redis.IntCmd, 1)
	go func() { res <- c.Incr(ctx, "k") }()
	waitFor(t, "INCR to be held", func() bool { return p.Pending(ToServer) > 0 })
	if n := direct.Exists(ctx, "k").Val(); n != 0 {
		t.Fatalf("EXISTS k while INCR is held: got %d, want 0", n)
	}
	p.Release(ToServer)
	cmd := <-res
	if got, err := cmd.Result(); err != nil || got != 1 {
		t.Fatalf("INCR after release: got %d, %v; want 1", got, err)
	}
	if got := direct.Get(ctx, "k").Val(); got != "1" {
		t.Fatalf("GET k on the server: got %q, want \"1\"", got)
	}
}

// Held bytes of a connection that closes are dropped, not sent on Release.
func TestProxyHoldDropsOnClose(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	direct := s.Client(t)
	p := StartProxy(t, s.Addr())
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.Hold(ToServer)
	if _, err := io.WriteString(conn, "INCR d\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "INCR to be held", func() bool { return p.Pending(ToServer) > 0 })
	_ = conn.Close()
	waitFor(t, "the proxy to drop the closed connection", func() bool { return p.Conns() == 0 })
	p.Release(ToServer)
	if n := direct.Exists(ctx, "d").Val(); n != 0 {
		t.Fatalf("EXISTS d after release: got %d, want 0 (the held INCR is dropped)", n)
	}
}

func TestProxyDelay(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	const d = 300 * time.Millisecond
	for _, tc := range []struct {
		dir  Direction
		want time.Duration // lower bound on a round trip
	}{
		{ToServer, d},
		{ToClient, d},
		{Both, 2 * d},
	} {
		t.Run(tc.dir.String(), func(t *testing.T) {
			p := StartProxy(t, s.Addr())
			c := proxyClient(t, p, 10*time.Second)
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("ping: %v", err)
			}
			p.Delay(tc.dir, d)
			start := time.Now()
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("ping with delay: %v", err)
			}
			if got := time.Since(start); got < tc.want {
				t.Errorf("round trip with Delay(%v, %v): got %v, want at least %v", tc.dir, d, got, tc.want)
			}
			p.Delay(tc.dir, 0)
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("ping without delay: %v", err)
			}
		})
	}
}

// blockedClients reads blocked_clients from INFO clients.
func blockedClients(ctx context.Context, c *redis.Client) string {
	info := c.Info(ctx, "clients").Val()
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "blocked_clients:"); ok {
			return v
		}
	}
	return ""
}

func TestProxyCut(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	direct := s.Client(t)
	p := StartProxyFor(t, s)
	c := proxyClient(t, p, time.Second)

	res := make(chan error, 1)
	go func() { res <- c.BLPop(ctx, 5*time.Second, "q").Err() }()
	waitFor(t, "BLPOP to block on the server", func() bool { return blockedClients(ctx, direct) == "1" })

	start := time.Now()
	p.Cut()
	if got := p.Conns(); got != 0 {
		t.Errorf("Conns after Cut: got %d, want 0", got)
	}
	select {
	case err := <-res:
		// BLPOP's own end would be redis.Nil after 5 s.
		if err == nil || errors.Is(err, redis.Nil) {
			t.Fatalf("BLPOP across Cut: got %v, want a connection error", err)
		}
		t.Logf("BLPOP failed %v after Cut: %v", time.Since(start), err)
	case <-time.After(30 * time.Second):
		t.Fatal("BLPOP still running 30s after Cut")
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Cut: %v", err)
	}
	waitFor(t, "the server to drop the cut client", func() bool { return blockedClients(ctx, direct) == "0" })
}

func TestProxyBlock(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	p := StartProxyFor(t, s)
	c := proxyClient(t, p, time.Second)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}

	p.Block(true)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("ping while blocked: got nil error, want one")
	}
	conn, err := net.Dial("tcp", p.Addr())
	if err == nil {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		_ = conn.Close()
		if err == nil || isTimeout(err) {
			t.Fatalf("read on a new connection while blocked: got %v, want EOF or reset", err)
		}
	}
	if got := p.Conns(); got != 0 {
		t.Errorf("Conns while blocked: got %d, want 0", got)
	}

	p.Block(false)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Block(false): %v", err)
	}
}

// A proxy keeps working across a restart of its server (same port).
func TestProxyServerRestart(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	p := StartProxyFor(t, s)
	c := proxyClient(t, p, time.Second)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatalf("ping with the server killed: got nil error, want one")
	}
	waitFor(t, "the proxy to drop connections to the dead server", func() bool { return p.Conns() == 0 })
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

// Close ends every goroutine, including those of connections with held and
// delayed bytes.
func TestProxyClose(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Options{})
	before := goleak.IgnoreCurrent()

	p, err := NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 200 * time.Millisecond})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	held, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p.Hold(ToClient)
	p.Delay(ToServer, time.Hour)
	_, _ = io.WriteString(held, "PING\r\n")
	waitFor(t, "PING to be delayed", func() bool { return p.Pending(ToServer) > 0 })

	p.Close()
	p.Close() // a second Close is a no-op
	if err := c.Ping(ctx).Err(); err == nil {
		t.Errorf("ping after Close: got nil error, want one")
	}
	if conn, err := net.Dial("tcp", p.Addr()); err == nil {
		_ = conn.Close()
		t.Errorf("dial after Close: got a connection, want refused")
	}
	_ = c.Close()
	_ = held.Close()
	goleak.VerifyNone(t, before)
}
