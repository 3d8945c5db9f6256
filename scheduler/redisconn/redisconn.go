// Package redisconn dials the Redis nodes that a jobs.yaml's redis: block
// names (one URL, Sentinel, Cluster, or the masters of a quorum) with the
// client settings the locker needs, and wraps them in a locker. Every
// client it builds has go-redis's own retries off (a claim is retried as
// itself by the locker and the scheduler, never blindly), context timeouts
// on the socket, and the block's timeouts, credentials and TLS.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

// Conn is a dialed redis: block: its clients and the locker over them.
type Conn struct {
	// Locker claims over the clients (single node, or a quorum).
	Locker *locker.Locker
	// Clients are the nodes: one, or the masters of a quorum.
	Clients []redis.UniversalClient
	// Describe names the connection for logs, without credentials.
	Describe string
}

// Dial builds the clients the block names; url, when not empty, replaces
// the block's url, sentinel, cluster and quorum (the --redis flag). It
// fails with ErrNoRedis when nothing is configured, and with a
// configuration error (never echoing a password) for a bad URL. Clients
// connect lazily: Dial does no I/O. opts may carry the locker's options
// (NodeTimeout defaults to the block's larger read/write timeout).
func Dial(rc jobs.RedisConfig, url string, lopts locker.Options) (*Conn, error) {
	if url != "" {
		rc.URL, rc.Sentinel, rc.Cluster, rc.Quorum = url, nil, nil, nil
	}
	if lopts.NodeTimeout == 0 {
		lopts.NodeTimeout = max(rc.ReadTimeout, rc.WriteTimeout)
	}
	switch {
	case len(rc.Quorum) > 0:
		cs := make([]redis.UniversalClient, 0, len(rc.Quorum))
		lcs := make([]locker.Client, 0, len(rc.Quorum))
		for i, u := range rc.Quorum {
			c, err := urlClient(u, rc)
			if err != nil {
				closeAll(cs)
				return nil, fmt.Errorf("%w: quorum master %d: %w", ErrBadURL, i+1, err)
			}
			cs, lcs = append(cs, c), append(lcs, c)
		}
		// Replicas claim the same slot at once; over several masters their
		// votes can split. Redlock's answer: retry after a random delay.
		if lopts.Retries == 0 {
			lopts.Retries, lopts.RetryDelay = 3, 50*time.Millisecond
		}
		l, err := locker.NewQuorum(lcs, lopts)
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		return &Conn{Locker: l, Clients: cs, Describe: fmt.Sprintf("quorum of %d masters", len(cs))}, nil
	case rc.Sentinel != nil:
		c := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: rc.Sentinel.Master, SentinelAddrs: rc.Sentinel.Addrs,
			Username: rc.Username, Password: rc.Password, TLSConfig: tlsConfig(rc, ""),
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, DialerRetries: oneDial, ContextTimeoutEnabled: true,
		})
		return single(c, lopts, "sentinel master "+rc.Sentinel.Master)
	case len(rc.Cluster) > 0:
		c := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: rc.Cluster, Username: rc.Username, Password: rc.Password, TLSConfig: tlsConfig(rc, ""),
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, DialerRetries: oneDial, ContextTimeoutEnabled: true,
		})
		return single(c, lopts, "cluster")
	case rc.URL != "":
		c, err := urlClient(rc.URL, rc)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
		}
		return single(c, lopts, redactURL(c))
	}
	return nil, ErrNoRedis
}

func single(c redis.UniversalClient, lopts locker.Options, describe string) (*Conn, error) {
	l, err := locker.New(c, lopts)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Conn{Locker: l, Clients: []redis.UniversalClient{c}, Describe: describe}, nil
}

// Close closes every client; call it once the scheduler has stopped.
func (c *Conn) Close() error {
	return closeAll(c.Clients)
}

func closeAll(cs []redis.UniversalClient) error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// noRetries turns go-redis's own command retries off: a claim retried after
// its reply was lost must be retried as itself, which only the locker
// knows how to do.
const noRetries = -1

// oneDial makes one attempt per dial (go-redis tries 5, 100 ms apart): a
// refused dial then fails at once, and a claim knows it never reached that
// node. With retried dials a dead quorum master answered every claim with
// "context deadline exceeded", which may have reached it, and the claim
// could not be given up and retried.
const oneDial = 1

// urlClient is a standalone client for a redis://, rediss:// or unix:// URL,
// with the block's credentials, TLS and timeouts where the URL is silent.
//
// Its errors never show the URL's password: url.Parse's errors quote the
// whole URL (and go-redis passes them on), so the URL is checked with
// jobs.ParseSecretURL first, and go-redis's own errors are scrubbed.
func urlClient(u string, rc jobs.RedisConfig) (*redis.Client, error) {
	if _, err := jobs.ParseSecretURL(u); err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), jobs.ErrBadURL.Error()+": "))
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		s := jobs.NewSecrets()
		s.AddURLPassword(u, jobs.RedactedLabel)
		return nil, fmt.Errorf("%s: %s", jobs.RedactURL(u), s.Redact(err.Error()))
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
	opt.MaxRetries, opt.DialerRetries, opt.ContextTimeoutEnabled = noRetries, oneDial, true
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

// Ready reports whether enough nodes answer PING: the one node, or a
// majority of a quorum; each PING is bounded by a second.
func (c *Conn) Ready(ctx context.Context) error {
	_, err := locker.Each(ctx, c.Locker, func(ctx context.Context, cl locker.Client) (struct{}, error) {
		return struct{}{}, cl.Process(ctx, redis.NewStatusCmd(ctx, "ping"))
	})
	return err
}

// CheckSettings reads each node's settings once and warns loudly about
// those that weaken the guarantees (see store.CheckSettings); a node that
// refuses CONFIG (managed Redis) gets one warning.
func (c *Conn) CheckSettings(ctx context.Context, log zerolog.Logger) {
	for i, cl := range c.Clients {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep := store.CheckSettings(cctx, cl)
		cancel()
		if rep.Unknown != nil {
			log.Warn().Int("node", i).Err(rep.Unknown).Msg("cannot read Redis settings: make sure maxmemory-policy is noeviction and appendonly yes with appendfsync always, or slots may run twice after an eviction or a crash")
		}
		for _, w := range rep.Warnings {
			log.Warn().Int("node", i).Msg("REDIS SETTING WEAKENS THE GUARANTEES: " + w)
		}
	}
}
