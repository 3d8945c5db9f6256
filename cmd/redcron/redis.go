package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// backend is what run needs from Redis: the locker, the clients (for
// readiness and the status API) and how to close them.
type backend struct {
	locker   *locker.Locker
	clients  []redis.UniversalClient
	describe string
	close    func()
	embedded bool // the in-process trial server: its settings are not checked
}

// connect builds the clients the config (or the --redis / REDCRON_REDIS_URL
// override) names. With no Redis configured at all it starts the embedded
// server, or joins one that another replica on this machine started.
func connect(rc jobs.RedisConfig, override string, log zerolog.Logger) (*backend, error) {
	if override != "" {
		rc.URL, rc.Sentinel, rc.Cluster, rc.Quorum = override, nil, nil, nil
	}
	lopts := locker.Options{NodeTimeout: max(rc.ReadTimeout, rc.WriteTimeout), Logger: log}
	closeAll := func(cs []redis.UniversalClient) func() {
		return func() {
			for _, c := range cs {
				_ = c.Close()
			}
		}
	}
	switch {
	case len(rc.Quorum) > 0:
		cs := make([]redis.UniversalClient, 0, len(rc.Quorum))
		for _, u := range rc.Quorum {
			c, err := urlClient(u, rc)
			if err != nil {
				closeAll(cs)()
				return nil, err
			}
			cs = append(cs, c)
		}
		// Replicas claim the same slot at once; over several masters their
		// votes can split. Redlock's answer: retry after a random delay.
		lopts.Retries, lopts.RetryDelay = 3, 50*time.Millisecond
		lcs := make([]locker.Client, len(cs))
		for i, c := range cs {
			lcs[i] = c
		}
		l, err := locker.NewQuorum(lcs, lopts)
		if err != nil {
			closeAll(cs)()
			return nil, err
		}
		return &backend{locker: l, clients: cs, describe: fmt.Sprintf("quorum of %d masters", len(cs)), close: closeAll(cs)}, nil
	case rc.Sentinel != nil:
		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: rc.Sentinel.Master, SentinelAddrs: rc.Sentinel.Addrs,
			Username: rc.Username, Password: rc.Password, TLSConfig: tlsConfig(rc, ""),
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, ContextTimeoutEnabled: true,
		})
		cs := []redis.UniversalClient{c}
		return &backend{locker: locker.New(c, lopts), clients: cs, describe: "sentinel master " + rc.Sentinel.Master, close: closeAll(cs)}, nil
	case len(rc.Cluster) > 0:
		c := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: rc.Cluster, Username: rc.Username, Password: rc.Password, TLSConfig: tlsConfig(rc, ""),
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, ContextTimeoutEnabled: true,
		})
		cs := []redis.UniversalClient{c}
		return &backend{locker: locker.New(c, lopts), clients: cs, describe: "cluster", close: closeAll(cs)}, nil
	case rc.URL != "":
		c, err := urlClient(rc.URL, rc)
		if err != nil {
			return nil, err
		}
		cs := []redis.UniversalClient{c}
		return &backend{locker: locker.New(c, lopts), clients: cs, describe: redactURL(c), close: closeAll(cs)}, nil
	}
	return embedded(rc, lopts, log)
}

// embedded starts the in-process server on its fixed loopback port, or joins
// the one another replica on this machine already serves there.
func embedded(rc jobs.RedisConfig, lopts locker.Options, log zerolog.Logger) (*backend, error) {
	srv, err := embedredis.Start(embedredis.DefaultAddr)
	url := "redis://" + embedredis.DefaultAddr + "/0"
	joined := false
	if err != nil {
		// Taken: if it is a replica's embedded server, join it; if not, take
		// any free port.
		probe := redis.NewClient(&redis.Options{Addr: embedredis.DefaultAddr, DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		perr := probe.Ping(ctx).Err()
		cancel()
		_ = probe.Close()
		if perr == nil {
			joined = true
		} else if srv, err = embedredis.Start("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		} else {
			url = srv.URL()
		}
	}
	c, err := urlClient(url, rc)
	if err != nil {
		if srv != nil {
			srv.Close()
		}
		return nil, err
	}
	cs := []redis.UniversalClient{c}
	if joined {
		log.Warn().Str("redis", url).Msg("no Redis configured: joined the embedded Redis of another replica on this machine; for a trial only, nothing survives that replica")
	} else {
		log.Warn().Str("redis", url).Str("join_with", "--redis "+url).
			Msg("NO REDIS CONFIGURED: started an EMBEDDED in-memory Redis for a one-machine trial; state is lost on exit; set redis.url or REDCRON_REDIS_URL in production")
	}
	return &backend{locker: locker.New(c, lopts), clients: cs, describe: "embedded " + url, embedded: true, close: func() {
		_ = c.Close()
		if srv != nil {
			srv.Close()
		}
	}}, nil
}

// noRetries turns go-redis's own command retries off: a claim retried after
// its reply was lost would find its own mark, answer "slot claimed" and lose
// the slot. The locker and the scheduler own retrying (the claim loop retries
// I/O errors with backoff; an undone claim keeps its mark). With
// ContextTimeoutEnabled every call is also bounded by its context's
// deadline, so the locker's NodeTimeout holds on the socket.
const noRetries = -1

// urlClient is a standalone client for a redis://, rediss:// or unix:// URL,
// with the config's credentials, TLS and timeouts where the URL is silent.
func urlClient(u string, rc jobs.RedisConfig) (*redis.Client, error) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if opt.Username == "" {
		opt.Username = rc.Username
	}
	if opt.Password == "" {
		opt.Password = rc.Password
	}
	if opt.TLSConfig == nil {
		host, _, _ := net.SplitHostPort(opt.Addr)
		opt.TLSConfig = tlsConfig(rc, host)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout
	opt.MaxRetries, opt.ContextTimeoutEnabled = noRetries, true
	return redis.NewClient(opt), nil
}

func tlsConfig(rc jobs.RedisConfig, host string) *tls.Config {
	if !rc.TLS {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
}

// redactURL names a client's address without its password, for logs.
func redactURL(c *redis.Client) string {
	o := c.Options()
	scheme := "redis"
	if o.TLSConfig != nil {
		scheme = "rediss"
	}
	return fmt.Sprintf("%s://%s/%d", scheme, o.Addr, o.DB)
}

// ready reports whether enough of the clients answer PING: all of one, or a
// majority of a quorum.
func (b *backend) ready(ctx context.Context) error {
	ok := 0
	var errs []error
	for _, c := range b.clients {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(cctx).Err()
		cancel()
		if err == nil {
			ok++
		} else {
			errs = append(errs, err)
		}
	}
	if ok >= len(b.clients)/2+1 {
		return nil
	}
	return errors.Join(errs...)
}

// checkSettings reads each node's settings once at start and warns loudly
// about those that weaken the guarantees; a node that refuses CONFIG
// (managed Redis) gets one warning, and the replica goes on.
func (b *backend) checkSettings(ctx context.Context, log zerolog.Logger) {
	if b.embedded {
		return
	}
	for i, c := range b.clients {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep := store.CheckSettings(cctx, c)
		cancel()
		if rep.Unknown != nil {
			log.Warn().Int("node", i).Err(rep.Unknown).Msg("cannot read Redis settings: make sure maxmemory-policy is noeviction and appendonly yes with appendfsync always, or slots may run twice after an eviction or a crash")
		}
		for _, w := range rep.Warnings {
			log.Warn().Int("node", i).Msg("REDIS SETTING WEAKENS THE GUARANTEES: " + w)
		}
	}
}
