package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Direction names one or both directions of the traffic through a Proxy.
type Direction int

const (
	// ToServer is the client-to-server direction: requests.
	ToServer Direction = 1 << iota
	// ToClient is the server-to-client direction: replies.
	ToClient
	// Both is ToServer and ToClient.
	Both = ToServer | ToClient
)

// String names the direction, as in test output.
func (d Direction) String() string {
	switch d {
	case ToServer:
		return "ToServer"
	case ToClient:
		return "ToClient"
	case Both:
		return "Both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// dirs lists the pipe indexes (0 ToServer, 1 ToClient) that d names.
func (d Direction) dirs() []int {
	var out []int
	for i := range 2 {
		if d&(1<<i) != 0 {
			out = append(out, i)
		}
	}
	return out
}

const (
	// proxyDialTimeout bounds the proxy's connect to its target.
	proxyDialTimeout = 2 * time.Second
	// proxyChunk is the largest read from one side in one go.
	proxyChunk = 32 << 10
	// proxyMaxQueued bounds the bytes queued (held or delayed) per
	// connection and direction; beyond it the proxy stops reading that side.
	proxyMaxQueued = 16 << 20
)

// Proxy is a TCP proxy on a free loopback port in front of one Redis server,
// which injects network faults: it holds, delays or cuts the bytes flowing in
// either direction, on every connection at once. Clients in this process or
// in others (replicas of the binary) reach the server through Addr or URL.
// It is safe for concurrent use.
//
// Each accepted connection gets its own connection to the target; when the
// target cannot be reached (a killed server), the client is reset. When one
// side closes its connection, the other is closed once the bytes already
// read from the closing side are forwarded; bytes held at that moment are
// dropped.
type Proxy struct {
	target   string
	userinfo *url.Userinfo // credentials for URL, when made for a Server
	ln       net.Listener
	ctx      context.Context // cancelled by Close, ends dials in progress
	cancel   context.CancelFunc

	held  [2]atomic.Bool
	delay [2]atomic.Int64 // time.Duration
	bytes [2]atomic.Int64

	mu      sync.Mutex
	conns   map[*proxyConn]struct{}
	blocked bool
	closed  bool

	wg        sync.WaitGroup // every goroutine the proxy started
	closeOnce sync.Once
}

// StartProxy starts a proxy in front of target ("127.0.0.1:port") for the
// test and closes it in t.Cleanup.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartProxyFor starts a proxy in front of s for the test, closed in
// t.Cleanup; its URL carries s's credentials. It keeps working across
// s.Restart, which keeps the port.
func StartProxyFor(t testing.TB, s *Server) *Proxy {
	t.Helper()
	p := StartProxy(t, s.Addr())
	switch {
	case s.opts.Username != "":
		p.userinfo = url.UserPassword(s.opts.Username, s.opts.UserPassword)
	case s.opts.Password != "":
		p.userinfo = url.UserPassword("", s.opts.Password)
	}
	return p
}

// NewProxy starts a proxy in front of target outside of a test, as in
// TestMain; the caller must call Close. The target must be a loopback
// address: fault injection stays on this machine.
func NewProxy(target string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("redistest: proxy target %q: %w", target, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("redistest: proxy target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("redistest: proxy listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{target: target, ln: ln, ctx: ctx, cancel: cancel, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is a redis:// URL (database 0) for the target through the proxy, with
// the server's credentials when made by StartProxyFor.
func (p *Proxy) URL() string {
	u := url.URL{Scheme: "redis", User: p.userinfo, Host: p.Addr(), Path: "/0"}
	return u.String()
}

// Hold stops forwarding bytes in dir on every connection, current and new,
// and buffers them until Release. A chunk being written at the moment of the
// call may still arrive.
func (p *Proxy) Hold(dir Direction) {
	for _, i := range dir.dirs() {
		p.held[i].Store(true)
	}
}

// Release forwards, in order, everything Hold buffered in dir and lets new
// bytes through again.
func (p *Proxy) Release(dir Direction) {
	for _, i := range dir.dirs() {
		p.held[i].Store(false)
	}
	p.wakeAll()
}

// Delay forwards every chunk read in dir from now on d after it was read,
// keeping each connection's order; 0 turns the delay off (chunks already
// waiting keep their time).
func (p *Proxy) Delay(dir Direction, d time.Duration) {
	for _, i := range dir.dirs() {
		p.delay[i].Store(int64(max(d, 0)))
	}
}

// Cut closes every current connection at once, dropping what is held or
// delayed; the client side is reset (RST) so that its reads and writes fail
// at once. New connections work as before. Cut returns when the cut
// connections are gone.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.shutdown(true)
	}
	for _, c := range conns {
		c.wg.Wait()
	}
}

// Block cuts the clients off from the server while on: current connections
// are cut (see Cut) and new ones are accepted and reset at once. Block(false)
// lets new connections through again.
func (p *Proxy) Block(on bool) {
	p.mu.Lock()
	p.blocked = on
	p.mu.Unlock()
	if on {
		p.Cut()
	}
}

// Conns is the number of connections currently proxied.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Bytes is the number of bytes forwarded so far in dir (summed for Both).
func (p *Proxy) Bytes(dir Direction) int64 {
	var n int64
	for _, i := range dir.dirs() {
		n += p.bytes[i].Load()
	}
	return n
}

// Pending is the number of bytes read in dir but not yet forwarded (held or
// delayed), over all current connections.
func (p *Proxy) Pending(dir Direction) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		for _, i := range dir.dirs() {
			pp := c.pipes[i]
			pp.mu.Lock()
			n += pp.queued
			pp.mu.Unlock()
		}
	}
	return n
}

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines to end. It is safe to call more than once.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		_ = p.ln.Close()
		p.Cut()
		p.wg.Wait()
	})
}

// wakeAll nudges every writer to look at its queue again.
func (p *Proxy) wakeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		for _, pp := range c.pipes {
			signal(pp.wake)
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error (such as too many open files): back off
			// briefly; Close ends the loop through ErrClosed.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(c.(*net.TCPConn))
	}
}

// reset closes c so that its peer sees a reset rather than an orderly end.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// serve connects a newly accepted client to the target and runs the two
// directions between them until the connection ends.
func (p *Proxy) serve(client *net.TCPConn) {
	defer p.wg.Done()
	p.mu.Lock()
	refuse := p.blocked || p.closed
	p.mu.Unlock()
	if refuse {
		reset(client)
		return
	}
	d := net.Dialer{Timeout: proxyDialTimeout}
	sc, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		reset(client)
		return
	}
	c := &proxyConn{p: p, client: client, server: sc.(*net.TCPConn), done: make(chan struct{})}
	c.pipes[0] = newPipe(c, 0, c.client, c.server)
	c.pipes[1] = newPipe(c, 1, c.server, c.client)

	p.mu.Lock()
	if p.blocked || p.closed {
		p.mu.Unlock()
		reset(client)
		_ = c.server.Close()
		return
	}
	p.conns[c] = struct{}{}
	c.wg.Add(4)
	p.wg.Add(3)
	p.mu.Unlock()

	for _, pp := range c.pipes {
		go func() { defer p.wg.Done(); defer c.wg.Done(); pp.write() }()
	}
	go func() { defer p.wg.Done(); defer c.wg.Done(); c.pipes[1].read() }()
	defer c.wg.Done()
	c.pipes[0].read()
}

// proxyConn is one client connection and its connection to the target.
type proxyConn struct {
	p              *Proxy
	client, server *net.TCPConn
	pipes          [2]*pipe

	done chan struct{} // closed by shutdown
	once sync.Once
	wg   sync.WaitGroup // the connection's four goroutines
}

// shutdown closes both sides, resetting the client's when rst is set, and
// forgets the connection; queued bytes are dropped. Only the first call acts.
func (c *proxyConn) shutdown(rst bool) {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		close(c.done)
		if rst {
			reset(c.client)
		} else {
			_ = c.client.Close()
		}
		_ = c.server.Close()
	})
}

// chunk is one read from a side, with the time it may be written.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe carries one direction of a connection: read copies chunks from src
// into the queue, write forwards them to dst when neither held nor delayed.
type pipe struct {
	c        *proxyConn
	dir      int // 0 ToServer, 1 ToClient
	src, dst *net.TCPConn

	wake  chan struct{} // to the writer: queue or hold changed
	space chan struct{} // to the reader: the queue shrank

	mu     sync.Mutex
	queue  []chunk
	queued int
	eof    bool // src ended; once the queue is forwarded, the connection ends
}

func newPipe(c *proxyConn, dir int, src, dst *net.TCPConn) *pipe {
	return &pipe{c: c, dir: dir, src: src, dst: dst,
		wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// signal wakes whoever waits on ch without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (pp *pipe) read() {
	p := pp.c.p
	buf := make([]byte, proxyChunk)
	for {
		n, err := pp.src.Read(buf)
		if n > 0 {
			ch := chunk{b: append([]byte(nil), buf[:n]...)}
			ch.due = time.Now().Add(time.Duration(p.delay[pp.dir].Load()))
			pp.mu.Lock()
			pp.queue = append(pp.queue, ch)
			pp.queued += n
			pp.mu.Unlock()
			signal(pp.wake)
			if !pp.waitSpace() {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				pp.c.shutdown(false) // a reset or a local close
				return
			}
			pp.mu.Lock()
			pp.eof = true
			pp.mu.Unlock()
			signal(pp.wake)
			return
		}
	}
}

// waitSpace blocks while the queue is over its bound; false when the
// connection ended meanwhile.
func (pp *pipe) waitSpace() bool {
	for {
		pp.mu.Lock()
		full := pp.queued >= proxyMaxQueued
		pp.mu.Unlock()
		if !full {
			return true
		}
		select {
		case <-pp.space:
		case <-pp.c.done:
			return false
		}
	}
}

// next takes the chunk to write now, or says how long to wait for the head
// to become due (0: until woken), or that the pipe is finished.
func (pp *pipe) next() (b []byte, wait time.Duration, finished bool) {
	held := pp.c.p.held[pp.dir].Load()
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.queue) == 0 || (held && pp.eof) {
		return nil, 0, pp.eof // held bytes of a closing connection are dropped
	}
	if held {
		return nil, 0, false
	}
	head := pp.queue[0]
	if w := time.Until(head.due); w > 0 {
		return nil, w, false
	}
	pp.queue[0] = chunk{}
	pp.queue = pp.queue[1:]
	pp.queued -= len(head.b)
	return head.b, 0, false
}

func (pp *pipe) write() {
	defer pp.c.shutdown(false)
	p := pp.c.p
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		b, wait, finished := pp.next()
		if finished {
			return
		}
		if b != nil {
			signal(pp.space)
			if _, err := pp.dst.Write(b); err != nil {
				return
			}
			p.bytes[pp.dir].Add(int64(len(b)))
			continue
		}
		var due <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			due = timer.C
		}
		select {
		case <-pp.wake:
		case <-due:
		case <-pp.c.done:
			return
		}
		timer.Stop()
	}
}
