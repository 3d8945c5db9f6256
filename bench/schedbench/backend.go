package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redcron/redcron/internal/redistest"
)

// backend is the Redis a scenario's replicas claim on: one plain
// redis-server, the masters of a Redis Cluster, or independent masters in
// quorum mode. The parent reads each server's INFO with its own admin
// client, and the jobs' keys through keys (a cluster client on a cluster,
// the first master in quorum mode: see readSkips for the records).
type backend struct {
	servers []*redistest.Server
	admins  []*redis.Client
	keys    redis.UniversalClient
	cluster bool
	quorum  bool
}

// startBackend starts one plain server (masters 0), a cluster of masters
// masters, or with quorum that many plain servers.
func startBackend(masters int, quorum bool) (*backend, error) {
	b := &backend{cluster: masters > 0 && !quorum, quorum: quorum}
	if masters == 0 || quorum {
		for range max(masters, 1) {
			srv, err := redistest.StartServer(redistest.Options{})
			if err != nil {
				b.stop()
				return nil, err
			}
			b.servers = append(b.servers, srv)
		}
	} else {
		nodes, err := redistest.StartClusterServers(masters)
		b.servers = nodes
		if err != nil {
			b.stop()
			return nil, err
		}
	}
	addrs := make([]string, len(b.servers))
	for i, s := range b.servers {
		addrs[i] = s.Addr()
		b.admins = append(b.admins, redis.NewClient(&redis.Options{Addr: s.Addr()}))
	}
	b.keys = b.admins[0]
	if b.cluster {
		b.keys = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	}
	return b, nil
}

// stop closes the admin clients and stops the servers.
func (b *backend) stop() {
	if b.cluster && b.keys != nil {
		_ = b.keys.Close()
	}
	for _, c := range b.admins {
		_ = c.Close()
	}
	for _, s := range b.servers {
		s.Stop()
	}
}

// addr is the first server's host:port (the gocron replicas' Redis).
func (b *backend) addr() string { return b.servers[0].Addr() }

// redisBlock is the jobs.yaml redis: block's connection lines.
func (b *backend) redisBlock() string {
	addrs := make([]string, len(b.servers))
	for i, s := range b.servers {
		addrs[i] = s.Addr()
		if b.quorum {
			addrs[i] = "redis://" + addrs[i] + "/0"
		}
	}
	switch {
	case b.quorum:
		return fmt.Sprintf("  quorum: [%s]\n", strings.Join(addrs, ", "))
	case b.cluster:
		return fmt.Sprintf("  cluster: [%s]\n", strings.Join(addrs, ", "))
	}
	return fmt.Sprintf("  url: redis://%s/0\n", b.addr())
}

// flush empties every master.
func (b *backend) flush(ctx context.Context) error {
	for _, c := range b.admins {
		if err := c.FlushAll(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}

// info reads every server's INFO and sums it over the masters; cpus keeps
// each master's CPU.
func (b *backend) info(ctx context.Context) (serverSnap, error) {
	var out serverSnap
	for i, c := range b.admins {
		s, err := serverInfo(ctx, c)
		if err != nil {
			return out, err
		}
		if i == 0 {
			out = s
			out.cpus = []time.Duration{s.cpu}
			continue
		}
		for k, v := range s.calls {
			out.calls[k] += v
		}
		for k, v := range s.usec {
			out.usec[k] += v
		}
		out.cpu += s.cpu
		out.cpus = append(out.cpus, s.cpu)
		out.memory += s.memory
		out.keys += s.keys
		out.evicted += s.evicted
	}
	return out, nil
}
