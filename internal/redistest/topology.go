package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartSentinel starts one Sentinel on a free loopback port that monitors
// master under the name masterName (quorum 1), and waits until it answers
// with the master's address. It is stopped in t.Cleanup.
func StartSentinel(t testing.TB, masterName string, master *Server) *Server {
	t.Helper()
	return StartSentinels(t, masterName, master, 1, SentinelOptions{})[0]
}

// SentinelOptions configure the Sentinels of StartSentinels.
type SentinelOptions struct {
	// Quorum is how many Sentinels must agree that the master is down
	// before a failover; default a majority of them.
	Quorum int
	// DownAfter is how long the master may not answer before a Sentinel
	// thinks it down (down-after-milliseconds); default 1s.
	DownAfter time.Duration
	// FailoverTimeout is Sentinel's failover-timeout: how long a failover
	// may take before another is tried (twice this), and after which a
	// replica that replicates from another address than the master's is
	// reconfigured; default 10s.
	FailoverTimeout time.Duration
	// Replicas is how many replicas of the master every Sentinel must have
	// discovered before StartSentinels returns; default 0.
	Replicas int
}

// StartSentinels starts n Sentinels on free loopback ports that monitor
// master under masterName, and waits until each answers with the master's
// address, knows the n-1 others and has discovered opts.Replicas replicas
// (a failover needs all of that). They are stopped in t.Cleanup.
func StartSentinels(t testing.TB, masterName string, master *Server, n int, opts SentinelOptions) []*Server {
	t.Helper()
	if opts.Quorum <= 0 {
		opts.Quorum = n/2 + 1
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = time.Second
	}
	if opts.FailoverTimeout <= 0 {
		opts.FailoverTimeout = 10 * time.Second
	}
	out := make([]*Server, n)
	for i := range out {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
			"sentinel down-after-milliseconds %[1]s %[4]d\n"+
			"sentinel failover-timeout %[1]s %[5]d\n"+
			"sentinel parallel-syncs %[1]s 1\n",
			masterName, master.Port(), opts.Quorum, opts.DownAfter.Milliseconds(), opts.FailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatalf("redistest: sentinel config: %v", err)
		}
		out[i] = Start(t, Options{Dir: dir, sentinelConf: conf})
	}
	deadline := time.Now().Add(3 * startTimeout)
	for _, s := range out {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
		for {
			err := sentinelReady(sc, masterName, master, n, opts.Replicas)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				_ = sc.Close()
				t.Fatalf("redistest: sentinel on %s not ready: %v", s.Addr(), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = sc.Close()
	}
	return out
}

// sentinelReady says why the Sentinel behind sc cannot fail masterName over
// yet (nil when it can): it must name master, know its peers among n
// Sentinels, and have discovered replicas replicas.
func sentinelReady(sc *redis.SentinelClient, masterName string, master *Server, n, replicas int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, err := sc.GetMasterAddrByName(ctx, masterName).Result()
	if err != nil || len(addr) != 2 || addr[1] != fmt.Sprint(master.Port()) {
		return fmt.Errorf("master address %v, %v", addr, err)
	}
	if n > 1 {
		peers, err := sc.Sentinels(ctx, masterName).Result()
		if err != nil || len(peers) < n-1 {
			return fmt.Errorf("knows %d of %d other sentinels (%v)", len(peers), n-1, err)
		}
	}
	if replicas > 0 {
		rs, err := sc.Replicas(ctx, masterName).Result()
		up := 0
		for _, r := range rs {
			if f := r["flags"]; f == "slave" {
				up++
			}
		}
		if err != nil || up < replicas {
			return fmt.Errorf("knows %d of %d replicas up (%v)", up, replicas, err)
		}
	}
	return nil
}

// syncTimeout bounds how long a new replica may take to link up with its
// master and acknowledge writes: its handshake and first sync go through
// Redis's once-a-second replication cron, and on a loaded machine (the
// whole suite with the race detector on 2 cores) a replica was seen still
// unlinked after startTimeout.
const syncTimeout = 30 * time.Second

// StartReplica starts a server that replicates from masterAddr (a master's
// address, or a Proxy's in front of it, to delay or cut replication), and
// waits until its link is up and it acknowledges writes (WAIT counts it:
// a replica that just synced may take a second more). The master must
// need no password. It is stopped in t.Cleanup.
func StartReplica(t testing.TB, masterAddr string, opts Options) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatalf("redistest: replica of %q: %v", masterAddr, err)
	}
	opts.Args = append(append([]string(nil), opts.Args...), "--replicaof", host, port)
	s := Start(t, opts)
	// One connection: WAIT counts the writes of its own connection.
	m := redis.NewClient(&redis.Options{Addr: masterAddr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, MaxRetries: -1, PoolSize: 1})
	defer m.Close()
	online := fmt.Sprintf("port=%d,state=online", s.Port())
	deadline := time.Now().Add(syncTimeout)
	for {
		err := replicaAcks(m, online)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: replica on %s of %s: %v", s.Addr(), masterAddr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replicaAcks says why the master behind m does not count the replica
// whose INFO line holds online as acknowledging its writes (nil when it
// does): every online replica must acknowledge a write made now.
func replicaAcks(m *redis.Client, online string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := m.Info(ctx, "replication").Result()
	if err != nil || !strings.Contains(info, online) {
		return fmt.Errorf("not online on the master (%v):\n%s", err, info)
	}
	n := int64(strings.Count(info, "state=online"))
	if err := m.Publish(ctx, "__redistest__", "sync").Err(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	got, err := m.Do(ctx, "wait", n, 100).Int64()
	if err != nil || got < n {
		return fmt.Errorf("WAIT %d: %d replicas acknowledged (%v)", n, got, err)
	}
	return nil
}

// StartCluster starts n >= 1 cluster-enabled masters, joins them, splits the
// 16384 hash slots between them and waits for cluster_state:ok. The nodes
// are stopped in t.Cleanup.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	nodes, err := StartClusterServers(n)
	for _, s := range nodes {
		t.Cleanup(s.Stop)
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	return nodes
}

// StartClusterServers is StartCluster outside of a test, as in a
// benchmark: the caller must Stop every node it returns. On error, the
// nodes that were started are returned too, for the caller to stop.
func StartClusterServers(n int) ([]*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	var nodes []*Server
	clients := make([]*redis.Client, 0, n)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for range n {
		s, err := StartServer(Options{Cluster: true})
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, s)
		clients = append(clients, redis.NewClient(&redis.Options{Addr: s.Addr(),
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
			MaxRetries: -1, ContextTimeoutEnabled: true}))
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return nodes, fmt.Errorf("redistest: CLUSTER ADDSLOTSRANGE %d %d: %w", lo, hi, err)
		}
		if i > 0 {
			if err := c.ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(nodes[0].Port())).Err(); err != nil {
				return nodes, fmt.Errorf("redistest: CLUSTER MEET: %w", err)
			}
		}
	}
	for _, c := range clients {
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				break
			}
			if ctx.Err() != nil {
				return nodes, fmt.Errorf("redistest: cluster of %d did not reach cluster_state:ok: %v\n%s", n, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes, nil
}
