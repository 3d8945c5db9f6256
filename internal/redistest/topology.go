package redistest

import (
	"context"
	"fmt"
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
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\n", masterName, master.Port(), masterName)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("redistest: sentinel config: %v", err)
	}
	s := Start(t, Options{Dir: dir, sentinelConf: conf})
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: time.Second})
	defer sc.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addr, err := sc.GetMasterAddrByName(ctx, masterName).Result()
		cancel()
		if err == nil && len(addr) == 2 && addr[1] == fmt.Sprint(master.Port()) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: sentinel on %s does not know master %q: %v %v", s.Addr(), masterName, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartCluster starts n >= 1 cluster-enabled masters, joins them, splits the
// 16384 hash slots between them and waits for cluster_state:ok. The nodes
// are stopped in t.Cleanup.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*startTimeout)
	defer cancel()
	nodes := make([]*Server, n)
	clients := make([]*redis.Client, n)
	for i := range nodes {
		nodes[i] = Start(t, Options{Cluster: true})
		clients[i] = nodes[i].Client(t)
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := c.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d: %v", lo, hi, err)
		}
		if i > 0 {
			if err := c.ClusterMeet(ctx, "127.0.0.1", fmt.Sprint(nodes[0].Port())).Err(); err != nil {
				t.Fatalf("redistest: CLUSTER MEET: %v", err)
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
				t.Fatalf("redistest: cluster of %d did not reach cluster_state:ok: %v\n%s", n, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}
