package redistest

import (
	"strconv"
	"syscall"
	"testing"
)

// RefusedAddr is a "127.0.0.1:port" address that refuses connections for
// the rest of the test, as a dead master's does: the port is bound by a
// socket that never listens, so that no server or proxy that another test
// starts meanwhile can take it (a killed server's port can be, and a test
// that counts on a dead master then reaches a live one). The socket is
// closed by t.Cleanup.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("redistest: refused address: socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("redistest: refused address: bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("redistest: refused address: getsockname: %v", err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}
