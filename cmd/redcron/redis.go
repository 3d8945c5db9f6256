package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/internal/embedredis"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/redisconn"
)

// redisConfigured says whether the redis: block (or the --redis override)
// names a Redis.
func redisConfigured(rc jobs.RedisConfig, override string) bool {
	return override != "" || rc.URL != "" || rc.Sentinel != nil || len(rc.Cluster) > 0 || len(rc.Quorum) > 0
}

// trialConn is the one-machine trial: with no Redis configured it starts
// the embedded server on its fixed loopback port, or joins the one another
// replica on this machine serves there, says so loudly, and returns the
// connection and how to close it (server included). With a Redis
// configured it returns nil: the scheduler dials it.
func trialConn(rc jobs.RedisConfig, override string, log zerolog.Logger) (*redisconn.Conn, func(), error) {
	return trialConnAt(embedredis.DefaultAddr, rc, override, log)
}

// trialConnAt is trialConn with the embedded server's port at addr. It
// joins a server there only if embedredis.Verify proves it is a trial
// server of this machine; anything else on the port (a redis-server of
// someone else) is left alone and the trial server takes a free port.
func trialConnAt(addr string, rc jobs.RedisConfig, override string, log zerolog.Logger) (*redisconn.Conn, func(), error) {
	if redisConfigured(rc, override) {
		return nil, func() {}, nil
	}
	srv, err := embedredis.Start(addr)
	url := "redis://" + addr + "/0"
	joined := false
	if err != nil {
		// Taken: if it is a trial replica's embedded server, join it; if
		// not, take any free port.
		verr := embedredis.Verify(context.Background(), addr)
		switch {
		case verr == nil:
			joined = true
		default:
			if srv, err = embedredis.Start("127.0.0.1:0"); err != nil {
				return nil, nil, fmt.Errorf("embedded redis: %w", err)
			}
			log.Warn().Str("addr", addr).AnErr("reason", verr).Msg("the embedded Redis port is taken by something that is not a trial replica's server: not joining it")
			url = srv.URL()
		}
	}
	conn, err := redisconn.Dial(rc, url, locker.Options{})
	if err != nil {
		if srv != nil {
			srv.Close()
		}
		return nil, nil, err
	}
	conn.Describe = "embedded " + url
	if joined {
		log.Warn().Str("redis", url).Msg("no Redis configured: joined the embedded Redis of another replica on this machine; for a trial only, nothing survives that replica")
	} else {
		log.Warn().Str("redis", url).Str("join_with", "--redis "+url).
			Msg("NO REDIS CONFIGURED: started an EMBEDDED in-memory Redis for a one-machine trial; state is lost on exit; set redis.url or REDCRON_REDIS_URL in production")
	}
	return conn, func() {
		_ = conn.Close()
		if srv != nil {
			srv.Close()
		}
	}, nil
}
