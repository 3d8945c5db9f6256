// Package embedredis starts an in-process, Redis-compatible server
// (alicebob/miniredis) on loopback for a one-machine trial of redcron when no
// Redis is configured. Its TTLs follow real time, so leases expire as they
// would on redis-server. It keeps nothing on disk and is not for production:
// promises are tested against real redis-server.
//
// A second trial replica joins the server only after Verify has proved it
// is one that Start started on this machine: Start sets MarkerKey in its
// server to a random value and writes that value to a file only this user
// can read. Anything else answering on the port (a redis-server of
// someone else, a stale process) is not joined.
package embedredis

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// DefaultAddr is where Start listens when given an empty address: a fixed
// loopback port, so a second replica on the same machine can join with
// --redis redis://127.0.0.1:6390/0.
const DefaultAddr = "127.0.0.1:6390"

// MarkerKey is the key Start sets, in the server it starts, to a random
// value that only this machine's user can read back from a file.
const MarkerKey = "redcron:embedded:marker"

// verifyTimeout bounds Verify's whole exchange with the server.
const verifyTimeout = time.Second

// Server is a running embedded server.
type Server struct {
	m      *miniredis.Miniredis
	marker string // the random value of MarkerKey
	file   string // where the marker was written; "" if it could not be
}

// Start listens on addr (DefaultAddr when empty; use "127.0.0.1:0" for a free
// port). It returns an error when the address is taken or not loopback-bound.
// It sets MarkerKey and writes its marker file (see Verify); a marker that
// cannot be written leaves the server usable, but not joinable.
func Start(addr string) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // TTLs run against the wall clock, as on redis-server
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedredis: listen on %s: %w", addr, err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	s := &Server{m: m, marker: hex.EncodeToString(b)}
	if err := m.Set(MarkerKey, s.marker); err != nil {
		m.Close()
		return nil, fmt.Errorf("embedredis: %w", err)
	}
	if path, err := markerPath(m.Addr()); err == nil && writeMarker(path, s.marker) == nil {
		s.file = path
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// URL is a redis:// URL that a client, or a second replica, can use.
func (s *Server) URL() string { return "redis://" + s.m.Addr() + "/0" }

// Joinable says whether Verify can prove this server is ours: its marker
// file was written.
func (s *Server) Joinable() bool { return s.file != "" }

// Close stops the server, drops every connection, and removes its marker
// file (unless another server has written its own there since).
func (s *Server) Close() {
	s.m.Close()
	if s.file != "" {
		if got, err := os.ReadFile(s.file); err == nil && bytes.Equal(bytes.TrimSpace(got), []byte(s.marker)) {
			_ = os.Remove(s.file)
		}
	}
}

// Verify returns nil when the server answering at addr is an embedded
// server that Start started on this machine, as this user: its MarkerKey
// holds the value of the marker file for addr. Otherwise (no marker file,
// nobody answering, another server, a marker that differs) the error
// wraps ErrNotEmbedded. It takes at most a second.
func Verify(ctx context.Context, addr string) error {
	path, err := markerPath(addr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotEmbedded, err)
	}
	want, err := readMarker(path)
	if err != nil {
		return fmt.Errorf("%w: no marker file: %w", ErrNotEmbedded, err)
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: verifyTimeout, ReadTimeout: verifyTimeout, WriteTimeout: verifyTimeout,
		MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	got, err := c.Get(ctx, MarkerKey).Result()
	if err != nil {
		return fmt.Errorf("%w: %s: reading its marker: %w", ErrNotEmbedded, addr, err)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%w: %s: its marker is not the one this machine's trial server wrote", ErrNotEmbedded, addr)
	}
	return nil
}

// markerPath is the marker file of the server at addr: in the user's cache
// directory, else in a directory of the user's own in the temp directory.
func markerPath(addr string) (string, error) {
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "redcron", "embedded")
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("redcron-%d", os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := ownedPrivate(dir, 0o700); err != nil {
		return "", err
	}
	name := "embedded-" + strings.NewReplacer(":", "_", "[", "", "]", "").Replace(addr) + ".marker"
	return filepath.Join(dir, name), nil
}

// writeMarker writes value to a fresh file at path, readable by this user
// only.
func writeMarker(path, value string) error {
	_ = os.Remove(path) // a stale marker of a server that is gone
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readMarker reads a marker file that this user owns and no one else can
// read or write.
func readMarker(path string) (string, error) {
	if err := ownedPrivate(path, 0o600); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := string(bytes.TrimSpace(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// ownedPrivate checks that path is owned by this user and that its mode
// grants nothing beyond perm to anyone.
func ownedPrivate(path string, perm os.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s is not owned by this user", path)
	}
	if fi.Mode().Perm()&^perm != 0 {
		return fmt.Errorf("%s is open to others (mode %v)", path, fi.Mode().Perm())
	}
	return nil
}
