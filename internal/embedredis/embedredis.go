// Package embedredis starts an in-process, Redis-compatible server
// (alicebob/miniredis) on loopback for a one-machine trial of redcron when no
// Redis is configured. Its TTLs follow real time, so leases expire as they
// would on redis-server. It keeps nothing on disk and is not for production:
// promises are tested against real redis-server.
package embedredis

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// DefaultAddr is where Start listens when given an empty address: a fixed
// loopback port, so a second replica on the same machine can join with
// --redis redis://127.0.0.1:6390/0.
const DefaultAddr = "127.0.0.1:6390"

// Server is a running embedded server.
type Server struct {
	m *miniredis.Miniredis
}

// Start listens on addr (DefaultAddr when empty; use "127.0.0.1:0" for a free
// port). It returns an error when the address is taken or not loopback-bound.
func Start(addr string) (*Server, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // TTLs run against the wall clock, as on redis-server
	if err := m.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("embedredis: listen on %s: %w", addr, err)
	}
	return &Server{m: m}, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.m.Addr() }

// URL is a redis:// URL that a client, or a second replica, can use.
func (s *Server) URL() string { return "redis://" + s.m.Addr() + "/0" }

// Close stops the server and drops every connection.
func (s *Server) Close() { s.m.Close() }
