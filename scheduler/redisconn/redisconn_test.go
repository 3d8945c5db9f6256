package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/redcron/redcron/internal/redistest"
	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/locker"
	"github.com/redcron/redcron/scheduler/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var jobSeq atomic.Int64

func baseConfig() jobs.RedisConfig {
	return jobs.RedisConfig{DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
}

// claimOnce proves a connection works end to end: a full slot claim (lease,
// meta, mark, pause and history keys, all under one hash tag), finished.
// It returns the fence.
func claimOnce(t *testing.T, c *Conn) int64 {
	t.Helper()
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	job := fmt.Sprintf("j%d", jobSeq.Add(1))
	k := store.JobKeys("t", job)
	slot := time.Now().Truncate(time.Second)
	lease, err := c.Locker.Obtain(ctx, locker.Claim{
		Key: k.Lease(), MetaKey: k.Meta(), TTL: 2 * time.Second,
		MarkKey: k.Mark(slot), MarkTTL: time.Minute, Retention: time.Minute, Running: store.Record{Job: job, Slot: slot, Outcome: store.OutcomeRunning}.Encode(),
		Slot: slot, PauseKey: k.Paused(), HistoryKey: k.History(), HistoryLen: 10, HistoryTTL: time.Hour,
		Records: locker.Records{Late: store.Skip(job, slot, store.ReasonLate)},
	})
	if err != nil {
		t.Fatalf("claim over %s: %v", c.Describe, err)
	}
	if err := lease.Finish(ctx, store.Record{Job: job, Slot: slot, Outcome: store.OutcomeOK}.Encode()); err != nil {
		t.Fatalf("finish: %v", err)
	}
	return lease.Fence()
}

func TestDial(t *testing.T) {
	acl := redistest.Start(t, redistest.Options{Username: "cron", UserPassword: "pw"})
	pass := redistest.Start(t, redistest.Options{Password: "s3cret"})
	q := []*redistest.Server{redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{})}

	tests := []struct {
		name     string
		rc       func() jobs.RedisConfig
		override string
		describe string
	}{
		{"url with ACL user from the config", func() jobs.RedisConfig {
			rc := baseConfig()
			rc.URL, rc.Username, rc.Password = "redis://"+acl.Addr()+"/0", "cron", "pw"
			return rc
		}, "", "redis://" + acl.Addr()},
		{"password in the URL", func() jobs.RedisConfig {
			rc := baseConfig()
			rc.URL = pass.URL()
			return rc
		}, "", "redis://" + pass.Addr()},
		{"override beats the config's quorum", func() jobs.RedisConfig {
			rc := baseConfig()
			rc.Quorum = []string{"redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0", "redis://127.0.0.1:3/0"}
			return rc
		}, q[0].URL(), "redis://" + q[0].Addr()},
		{"quorum of three", func() jobs.RedisConfig {
			rc := baseConfig()
			rc.Quorum = []string{q[0].URL(), q[1].URL(), q[2].URL()}
			return rc
		}, "", "quorum of 3 masters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, tc.rc(), tc.override, locker.Options{})
			if !strings.HasPrefix(c.Describe, tc.describe) || strings.Contains(c.Describe, "s3cret") {
				t.Fatalf("describe: got %q, want prefix %q and no password", c.Describe, tc.describe)
			}
			if f := claimOnce(t, c); f < 1 {
				t.Fatalf("fence: got %d, want >= 1", f)
			}
		})
	}

	t.Run("wrong password: not ready", func(t *testing.T) {
		rc := baseConfig()
		rc.URL, rc.Username, rc.Password = "redis://"+acl.Addr()+"/0", "cron", "nope"
		c := mustDial(t, rc, "", locker.Options{})
		if err := c.Ready(context.Background()); err == nil {
			t.Fatalf("ready with a wrong password: got nil, want an auth error")
		}
	})

	t.Run("quorum with one master down is still ready; with two it is not", func(t *testing.T) {
		rc := baseConfig()
		rc.Quorum = []string{q[0].URL(), q[1].URL(), "redis://127.0.0.1:1/0"}
		c := mustDial(t, rc, "", locker.Options{})
		claimOnce(t, c)
		rc.Quorum = []string{q[0].URL(), "redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"}
		c2 := mustDial(t, rc, "", locker.Options{})
		if err := c2.Ready(context.Background()); err == nil {
			t.Fatalf("ready with 2 of 3 masters down: got nil, want an error")
		}
	})

	t.Run("nothing configured", func(t *testing.T) {
		if _, err := Dial(baseConfig(), "", locker.Options{}); err != ErrNoRedis {
			t.Fatalf("got %v, want ErrNoRedis", err)
		}
	})
}

// TestBadURLHidesPassword: a URL Dial refuses (as --redis, url or a quorum
// master) is named in the error without its userinfo, whatever is wrong
// with it.
func TestBadURLHidesPassword(t *testing.T) {
	const pw = "hunter2-secret"
	tests := []struct {
		name, url string
		quorum    bool
	}{
		{"bad port", "redis://:" + pw + "@127.0.0.1:xx/0", false},
		{"password where the user goes", "redis://" + pw + "@127.0.0.1:xx/0", false},
		{"bad escape", "redis://user:" + pw + "%zz@127.0.0.1:6379/0", false},
		{"bad scheme", "mysql://user:" + pw + "@127.0.0.1/0", false},
		{"bad database", "redis://:" + pw + "@127.0.0.1:6379/abc", false},
		{"control character", "redis://:" + pw + "@127.0.0.1:6379/0\x7f", false},
		{"quorum master", "redis://:" + pw + "@127.0.0.1:xx/0", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := baseConfig()
			override := tt.url
			if tt.quorum {
				rc.Quorum, override = []string{"redis://127.0.0.1:1/0", tt.url, "redis://127.0.0.1:3/0"}, ""
			}
			_, err := Dial(rc, override, locker.Options{})
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("got %v, want ErrBadURL", err)
			}
			for _, leak := range []string{pw, "hunter2", "secret"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows %q", err, leak)
				}
			}
			if !strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error %q: want it to name the URL's host", err)
			}
		})
	}
}

// TestSentinelAndCluster: the scripts run through a Sentinel-discovered
// master and on a Redis Cluster of three masters, where every key of one
// claim must hash to one slot (the job's {hash tag}).
func TestSentinelAndCluster(t *testing.T) {
	t.Run("sentinel", func(t *testing.T) {
		master := redistest.Start(t, redistest.Options{})
		s := redistest.StartSentinel(t, "redcron-master", master)
		rc := baseConfig()
		rc.Sentinel = &jobs.SentinelConfig{Master: "redcron-master", Addrs: []string{s.Addr()}}
		c := mustDial(t, rc, "", locker.Options{})
		if f := claimOnce(t, c); f != 1 {
			t.Fatalf("fence: got %d, want 1", f)
		}
		if n, _ := master.Client(t).Keys(context.Background(), "t:*:meta").Result(); len(n) != 1 {
			t.Fatalf("the claim did not reach the master Sentinel names")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		nodes := redistest.StartCluster(t, 3)
		rc := baseConfig()
		for _, n := range nodes {
			rc.Cluster = append(rc.Cluster, n.Addr())
		}
		c := mustDial(t, rc, "", locker.Options{})
		if f := claimOnce(t, c); f != 1 {
			t.Fatalf("fence: got %d, want 1", f)
		}
	})
}

// TestCheckSettings: a connection warns loudly about Redis settings that
// weaken the guarantees, and once, without failing, when CONFIG is refused
// (managed Redis).
func TestCheckSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"eviction and no AOF", []string{"--maxmemory-policy", "allkeys-lru"}, []string{"REDIS SETTING WEAKENS THE GUARANTEES: maxmemory-policy is allkeys-lru", "REDIS SETTING WEAKENS THE GUARANTEES: appendonly is no"}},
		{"CONFIG refused", []string{"--rename-command", "CONFIG", ""}, []string{"cannot read Redis settings"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{Args: tc.args})
			c := mustDial(t, baseConfig(), srv.URL(), locker.Options{})
			var buf strings.Builder
			c.CheckSettings(context.Background(), zerolog.New(&buf))
			out := buf.String()
			for _, w := range tc.want {
				if strings.Count(out, w) != 1 {
					t.Errorf("log: got %q, want %q once", out, w)
				}
			}
			if n := strings.Count(out, "\n"); n != len(tc.want) {
				t.Errorf("log lines: got %d, want %d:\n%s", n, len(tc.want), out)
			}
		})
	}
}

// TestTLS dials real TLS-only servers whose certificates a private CA
// signed: the CA verifies them in URL and quorum mode, a wrong CA or a
// wrong server name fails with the verification error, a server that
// requires client certificates gets one, and insecure_skip_verify skips
// the verification.
func TestTLS(t *testing.T) {
	pki, other := redistest.GeneratePKI(t), redistest.GeneratePKI(t)
	srv := redistest.Start(t, redistest.Options{TLS: pki})
	mtls := redistest.Start(t, redistest.Options{TLS: pki, TLSAuthClients: true})
	q := []*redistest.Server{srv, redistest.Start(t, redistest.Options{TLS: pki}), redistest.Start(t, redistest.Options{TLS: pki})}

	withTLS := func(url string, o jobs.RedisTLS) jobs.RedisConfig {
		rc := baseConfig()
		rc.URL, rc.TLS, rc.TLSOptions = url, true, &o
		return rc
	}
	client := jobs.RedisTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}
	for _, tc := range []struct {
		name    string
		rc      jobs.RedisConfig
		wantErr string // a regexp the error must match; "" when a claim must go through
	}{
		{"rediss URL, private CA", withTLS("rediss://"+srv.Addr()+"/0", jobs.RedisTLS{CAFile: pki.CAFile}), ""},
		{"redis URL with tls on", withTLS("redis://"+srv.Addr()+"/0", jobs.RedisTLS{CAFile: pki.CAFile}), ""},
		{"server name in the certificate", withTLS(srv.URL(), jobs.RedisTLS{CAFile: pki.CAFile, ServerName: "localhost"}), ""},
		{"client certificate required and given", withTLS(mtls.URL(), client), ""},
		{"wrong CA", withTLS(srv.URL(), jobs.RedisTLS{CAFile: other.CAFile}), "certificate signed by unknown authority"},
		{"server name not in the certificate", withTLS(srv.URL(), jobs.RedisTLS{CAFile: pki.CAFile, ServerName: "redis.internal"}), "not redis.internal"},
		{"system roots only", withTLS(srv.URL(), jobs.RedisTLS{}), "certificate signed by unknown authority"},
		// TLS 1.3: the server checks the client's certificate after the
		// client has finished its handshake, then sends its alert and
		// closes; the client's first command may meet the closed
		// connection (reset, EOF) before it reads the alert.
		{"client certificate required, none given", withTLS(mtls.URL(), jobs.RedisTLS{CAFile: pki.CAFile}), "certificate required|connection reset by peer|EOF"},
		{"insecure_skip_verify with a wrong CA", withTLS(srv.URL(), jobs.RedisTLS{CAFile: other.CAFile, InsecureSkipVerify: true}), ""},
		{"quorum of three", func() jobs.RedisConfig {
			rc := withTLS("", jobs.RedisTLS{CAFile: pki.CAFile})
			rc.Quorum = []string{q[0].URL(), q[1].URL(), q[2].URL()}
			return rc
		}(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// go-redis retries a failed dial 5 times, 100ms apart: leave
			// room for the handshake's own error to come back.
			c, err := Dial(tc.rc, "", locker.Options{NodeTimeout: 3 * time.Second})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			t.Cleanup(func() { _ = c.Close() })
			if tc.wantErr == "" {
				if f := claimOnce(t, c); f < 1 {
					t.Errorf("fence: got %d, want >= 1", f)
				}
				return
			}
			err = c.Ready(context.Background())
			if err == nil || !regexp.MustCompile(tc.wantErr).MatchString(err.Error()) {
				t.Errorf("Ready: got %v, want an error matching %q", err, tc.wantErr)
			}
		})
	}
}

// TestTLSEveryMode: Sentinel and Cluster clients get the block's TLS
// configuration too (one CA, client certificate and server name for every
// node), and files that cannot be loaded fail Dial with ErrTLS.
func TestTLSEveryMode(t *testing.T) {
	pki := redistest.GeneratePKI(t)
	rc := baseConfig()
	rc.TLS, rc.TLSOptions = true, &jobs.RedisTLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: "redis.internal"}
	sentinel, cluster := rc, rc
	sentinel.Sentinel = &jobs.SentinelConfig{Master: "m", Addrs: []string{"127.0.0.1:1"}}
	cluster.Cluster = []string{"127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		rc   jobs.RedisConfig
		opts func(*Conn) any
	}{
		{"sentinel", sentinel, func(c *Conn) any { return c.Clients[0].(*redis.Client).Options().TLSConfig }},
		{"cluster", cluster, func(c *Conn) any { return c.Clients[0].(*redis.ClusterClient).Options().TLSConfig }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustDial(t, tc.rc, "", locker.Options{})
			got, _ := tc.opts(c).(*tls.Config)
			if got == nil || got.RootCAs == nil || len(got.Certificates) != 1 || got.ServerName != "redis.internal" || got.MinVersion != tls.VersionTLS12 {
				t.Errorf("TLS config: got %+v, want the CA, one client certificate, server name redis.internal, TLS 1.2+", got)
			}
		})
	}
	t.Run("files that cannot be loaded", func(t *testing.T) {
		for _, o := range []jobs.RedisTLS{
			{CAFile: pki.Dir + "/missing.pem"},
			{CAFile: pki.ClientKey},
			{CertFile: pki.ClientCert},
			{CertFile: pki.ClientCert, KeyFile: pki.ServerKey},
		} {
			rc := baseConfig()
			rc.URL, rc.TLS, rc.TLSOptions = "redis://127.0.0.1:1/0", true, &o
			if _, err := Dial(rc, "", locker.Options{}); !errors.Is(err, ErrTLS) {
				t.Errorf("Dial with %+v: got %v, want ErrTLS", o, err)
			}
		}
	})
}

// TestMinReplicasAck: the block's min_replicas_ack reaches the locker (a
// claim on a master without replicas is not acknowledged), the
// connection says so, and CheckSettings warns that too few replicas are
// online; with a replica, claims go through and nothing is said.
func TestMinReplicasAck(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	rc := baseConfig()
	rc.URL, rc.MinReplicasAck, rc.AckTimeout = master.URL(), 1, 100*time.Millisecond
	c := mustDial(t, rc, "", locker.Options{})
	if want := "claims acknowledged by 1 replica(s)"; !strings.Contains(c.Describe, want) {
		t.Errorf("Describe: got %q, want it to contain %q", c.Describe, want)
	}
	k := store.JobKeys("t", "ack")
	if _, err := c.Locker.Obtain(context.Background(), locker.Claim{Key: k.Lease(), MetaKey: k.Meta(), TTL: time.Second}); !errors.Is(err, locker.ErrNotAcked) {
		t.Errorf("claim without a replica: got %v, want ErrNotAcked", err)
	}
	var buf strings.Builder
	c.CheckSettings(context.Background(), zerolog.New(&buf))
	if want := "FEWER REPLICAS THAN min_replicas_ack"; strings.Count(buf.String(), want) != 1 {
		t.Errorf("log: got %q, want %q once", buf.String(), want)
	}

	redistest.StartReplica(t, master.Addr(), redistest.Options{})
	claimOnce(t, c)
	buf.Reset()
	c.CheckSettings(context.Background(), zerolog.New(&buf))
	if strings.Contains(buf.String(), "min_replicas_ack") {
		t.Errorf("log with a replica online: got %q, want no word of min_replicas_ack", buf.String())
	}
}

// mustDial is Dial that fails the test on an error and closes the connection
// when the test ends.
func mustDial(t *testing.T, rc jobs.RedisConfig, override string, opts locker.Options) *Conn {
	t.Helper()
	c, err := Dial(rc, override, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestBatchScripts: batch_scripts: false reaches the locker, whose claims
// and finishes then go as an EVALSHA each; by default a burst of them is
// batched in fewer.
func TestBatchScripts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unbatched bool
	}{{"default", false}, {"batch_scripts: false", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			rc := baseConfig()
			rc.URL, rc.Unbatched = srv.URL(), tc.unbatched
			c := mustDial(t, rc, "", locker.Options{})
			const n = 64
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					k := store.JobKeys("t", "batch"+strconv.Itoa(i))
					lease, err := c.Locker.Obtain(context.Background(), locker.Claim{Key: k.Lease(), MetaKey: k.Meta(), TTL: time.Minute, Retention: time.Minute, Unwatched: true})
					if err == nil {
						err = lease.Finish(context.Background(), "done")
					}
					if err != nil {
						t.Errorf("claim %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			stats := srv.Client(t).Info(context.Background(), "commandstats").Val()
			sha := redistest.CommandCalls(t, stats, "evalsha")
			switch {
			case tc.unbatched && sha < 2*n:
				t.Errorf("EVALSHA calls for %d claims and finishes: got %d, want %d (each on its own)", n, sha, 2*n)
			case !tc.unbatched && sha >= 2*n:
				t.Errorf("EVALSHA calls for %d claims and finishes at once: got %d, want fewer (batched)", n, sha)
			}
		})
	}
}
