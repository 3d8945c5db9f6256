package redistest

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestRefusedAddr: a dial to RefusedAddr is refused, and its port cannot be
// taken by a listener (a server started meanwhile) until the test ends.
func TestRefusedAddr(t *testing.T) {
	addr := RefusedAddr(t)
	for i := range 3 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("dial #%d of %s: got a connection, want it refused", i+1, addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial #%d of %s: got %v, want ECONNREFUSED", i+1, addr, err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
		t.Fatalf("listen on %s: got a listener, want the port in use", addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("listen on %s: got %v, want EADDRINUSE", addr, err)
	}
}
