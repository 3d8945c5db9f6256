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
	"sync"
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

	acks int // replicas that must acknowledge each claim (min_replicas_ack)
}

// Dial builds the clients the block names; url, when not empty, replaces
// the block's url, sentinel, cluster and quorum (the --redis flag). It
// fails with ErrNoRedis when nothing is configured, and with a
// configuration error (never echoing a password) for a bad URL or TLS
// files that cannot be loaded. Clients connect lazily: Dial reads the TLS
// files but does no network I/O. opts may carry the locker's options
// (NodeTimeout defaults to the block's larger read/write timeout;
// MinReplicasAck and AckTimeout to the block's min_replicas_ack and
// ack_timeout; Unbatched is set by batch_scripts: false).
//
// TLS (tls: true, a tls: mapping, or a rediss:// URL) is the same in every
// mode: TLS 1.2 at least, the server verified against ca_file (default the
// system's roots) under server_name (default the host dialed: each
// Sentinel, master and Cluster node by its own address), and the client
// certificate presented when the block names one.
func Dial(rc jobs.RedisConfig, url string, lopts locker.Options) (*Conn, error) {
	if url != "" {
		rc.URL, rc.Sentinel, rc.Cluster, rc.Quorum = url, nil, nil, nil
	}
	if lopts.NodeTimeout == 0 {
		lopts.NodeTimeout = max(rc.ReadTimeout, rc.WriteTimeout)
	}
	if lopts.MinReplicasAck == 0 && rc.MinReplicasAck > 0 {
		lopts.MinReplicasAck, lopts.AckTimeout = rc.MinReplicasAck, rc.AckTimeout
	}
	lopts.Unbatched = lopts.Unbatched || rc.Unbatched
	tlsCfg, err := TLSConfig(rc)
	if err != nil {
		return nil, err
	}
	conn, err := dial(rc, tlsCfg, lopts)
	if err != nil {
		return nil, err
	}
	conn.acks = lopts.MinReplicasAck
	if conn.acks > 0 {
		conn.Describe += fmt.Sprintf(", claims acknowledged by %d replica(s)", conn.acks)
	}
	return conn, nil
}

// dial builds the clients and the locker of one mode.
func dial(rc jobs.RedisConfig, tlsCfg *tls.Config, lopts locker.Options) (*Conn, error) {
	switch {
	case len(rc.Quorum) > 0:
		cs := make([]redis.UniversalClient, 0, len(rc.Quorum))
		lcs := make([]locker.Client, 0, len(rc.Quorum))
		for i, u := range rc.Quorum {
			c, err := urlClient(u, rc, tlsCfg)
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
			Username: rc.Username, Password: rc.Password, TLSConfig: tlsCfg,
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, DialerRetries: oneDial, ContextTimeoutEnabled: true,
		})
		return single(c, lopts, "sentinel master "+rc.Sentinel.Master)
	case len(rc.Cluster) > 0:
		c := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: rc.Cluster, Username: rc.Username, Password: rc.Password, TLSConfig: tlsCfg,
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout,
			MaxRetries: noRetries, DialerRetries: oneDial, ContextTimeoutEnabled: true,
		})
		return single(c, lopts, "cluster")
	case rc.URL != "":
		c, err := urlClient(rc.URL, rc, tlsCfg)
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
// tlsCfg is the block's TLS (nil when off); a rediss:// URL turns TLS on
// with the block's CA and client certificate, and its skip_verify=true is
// kept.
//
// Its errors never show the URL's password: url.Parse's errors quote the
// whole URL (and go-redis passes them on), so the URL is checked with
// jobs.ParseSecretURL first, and go-redis's own errors are scrubbed.
func urlClient(u string, rc jobs.RedisConfig, tlsCfg *tls.Config) (*redis.Client, error) {
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
	if fromURL := opt.TLSConfig; fromURL != nil || tlsCfg != nil {
		cfg, err := buildTLS(rc.TLSOptions)
		if err != nil {
			return nil, err
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(opt.Addr)
		}
		if fromURL != nil && fromURL.InsecureSkipVerify {
			cfg.InsecureSkipVerify = true
		}
		opt.TLSConfig = cfg
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = rc.DialTimeout, rc.ReadTimeout, rc.WriteTimeout
	opt.MaxRetries, opt.DialerRetries, opt.ContextTimeoutEnabled = noRetries, oneDial, true
	return redis.NewClient(opt), nil
}

// TLSConfig is the client TLS configuration of a redis: block: nil when
// TLS is off (tls: false and no rediss:// URL), else TLS 1.2 at least with
// the block's CA, client certificate, server name and verification. It
// reads the files, and fails with an error naming the file that cannot be
// read or parsed (never quoting a key).
func TLSConfig(rc jobs.RedisConfig) (*tls.Config, error) {
	if !rc.TLS && !strings.HasPrefix(rc.URL, "rediss://") {
		return nil, nil
	}
	return buildTLS(rc.TLSOptions)
}

// buildTLS makes a TLS configuration from the tls: mapping (nil: the
// system's roots, the host dialed as the server name).
func buildTLS(o *jobs.RedisTLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o == nil {
		return cfg, nil
	}
	cfg.ServerName, cfg.InsecureSkipVerify = o.ServerName, o.InsecureSkipVerify
	if o.CAFile != "" {
		pool, err := jobs.LoadCAFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		certPEM, err := jobs.ReadPEMFile(o.CertFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate: %w", ErrTLS, err)
		}
		keyPEM, err := jobs.ReadPEMFile(o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client key: %w", ErrTLS, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s and key %s: %w", ErrTLS, o.CertFile, o.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, fmt.Errorf("%w: a client certificate needs both cert_file and key_file", ErrTLS)
	}
	return cfg, nil
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
	if c.acks > 0 {
		c.checkReplicas(ctx, log)
	}
}

// CheckRights checks on every node at once that the ACL user may run what
// redcron's scripts call (store.CheckRights), within 2s. Its error wraps
// store.ErrACL when any node refused something (a quorum node whose user
// lacks a right fails the start too); other failures (a node unreachable)
// are joined as they are.
func (c *Conn) CheckRights(ctx context.Context, prefix string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	errs := make([]error, len(c.Clients))
	var wg sync.WaitGroup
	for i, cl := range c.Clients {
		wg.Go(func() {
			if err := store.CheckRights(ctx, cl, prefix); err != nil {
				errs[i] = fmt.Errorf("node %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkReplicas warns when the master has fewer online replicas than
// min_replicas_ack: every claim then fails and nothing runs. INFO refused
// (an ACL without it) gets one warning.
func (c *Conn) checkReplicas(ctx context.Context, log zerolog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cmd := redis.NewStringCmd(cctx, "info", "replication")
	if err := c.Clients[0].Process(cctx, cmd); err != nil {
		log.Warn().Err(err).Int("min_replicas_ack", c.acks).Msg("cannot read INFO replication: make sure the master has at least min_replicas_ack replicas online, or no claim is acknowledged and nothing runs")
		return
	}
	if n := strings.Count(cmd.Val(), ",state=online"); n < c.acks {
		log.Warn().Int("min_replicas_ack", c.acks).Int("replicas_online", n).Msg("FEWER REPLICAS THAN min_replicas_ack: claims are not acknowledged and nothing runs until enough replicas are online")
	}
}
