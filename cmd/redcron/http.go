package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/scheduler"
	"github.com/redcron/redcron/scheduler/statusapi"
)

// httpServer serves /healthz, /readyz, /metrics, and the status API and
// page (scheduler/statusapi) at / and /api/.
type httpServer struct {
	srv  *http.Server
	done chan struct{}
}

// listenHTTP listens on addr (a bare ":PORT" binds 127.0.0.1).
func listenHTTP(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--http %q: %w", addr, err)
	}
	if host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: %w", err)
	}
	return l, nil
}

// httpOptions are what serveHTTP serves besides the health endpoints.
type httpOptions struct {
	status     http.Handler // the status page and API
	token      string       // $REDCRON_HTTP_TOKEN
	readAuth   bool         // /metrics needs the token too (the API is told by its own Config)
	allowHosts []string     // Host names accepted on a loopback bind besides the loopback ones
}

// serveHTTP serves the endpoints on l in its own goroutine until shutdown.
// /healthz and /readyz are always open; /metrics needs the token with
// readAuth. On a loopback address every request must name a loopback host
// (statusapi.LoopbackOnly), against DNS rebinding.
func serveHTTP(l net.Listener, sched *scheduler.Scheduler, reg *prometheus.Registry, o httpOptions, log zerolog.Logger) *httpServer {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := sched.Ready(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if o.readAuth {
		metrics = statusapi.RequireBearer(o.token, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", o.status)
	var h http.Handler = mux
	if isLoopback(l.Addr()) {
		h = statusapi.LoopbackOnly(mux, o.allowHosts...)
	}
	s := &httpServer{
		srv: &http.Server{
			Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	log.Info().Str("addr", l.Addr().String()).Msg("http: status page at /, API at /api/status, /healthz /readyz /metrics")
	return s
}

// isLoopback reports whether a listener's address is a loopback one.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// shutdown stops accepting, waits up to 5s for requests in flight, and for
// the serving goroutine.
func (s *httpServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
