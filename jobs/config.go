package jobs

import "time"

// Built-in defaults, applied before the file's defaults: block.
const (
	DefaultLockTTL       = 30 * time.Second
	DefaultCatchupWindow = time.Minute
	DefaultRetryAttempts = 1
	DefaultRetryBackoff  = time.Second
	DefaultRetryMax      = time.Minute
	DefaultKillGrace     = 5 * time.Second
	DefaultOutputLimit   = 64 << 10 // bytes of command output logged per run
	DefaultOutputTail    = 4 << 10  // bytes of output or response kept in the run's record
	DefaultHistoryKeep   = 100
	DefaultHistoryMaxAge = 7 * 24 * time.Hour
	DefaultHTTPTimeout   = 10 * time.Second
	DefaultHTTPMethod    = "GET"
	DefaultDialTimeout   = time.Second
	DefaultReadTimeout   = 500 * time.Millisecond
	DefaultWriteTimeout  = 500 * time.Millisecond
	DefaultAckTimeout    = 500 * time.Millisecond

	// MinLockTTL is the shortest lock_ttl accepted: the watchdog renews at
	// lock_ttl/3 and needs room for a round trip.
	MinLockTTL = time.Second
	// MaxOutputTail is the largest output_tail accepted (records stay small).
	MaxOutputTail = 64 << 10
	// MinHistoryAge is the shortest history max_age accepted.
	MinHistoryAge = time.Minute
	// MaxNameLen is the longest job name accepted.
	MaxNameLen = 64
	// MinQuorum is the fewest masters accepted in quorum mode.
	MinQuorum = 3
)

// Config is a decoded, validated jobs.yaml.
type Config struct {
	File          string
	Redis         RedisConfig
	ShutdownGrace time.Duration // top-level `shutdown_grace`; 0 means the scheduler's default, scheduler.DefaultShutdownGrace
	Jobs          []*Job        // in file order
	// Warnings are problems that do not stop the file from loading (an even
	// quorum, a jitter not shorter than the schedule interval, a command not
	// found in this machine's PATH). `redcron validate` prints them.
	Warnings []*Problem
	// Secrets are the values that must not leave the process: every value
	// the environment gave a ${VAR} (unless only read as a number, a
	// boolean or a duration) and every Redis password. Never nil after
	// Load or Parse. Pass text that leaves the process through it (see
	// Secrets); scheduler.FromConfig hands it to the scheduler's records,
	// notifications and status API.
	Secrets *Secrets
	// Vars are the names of the environment variables the file's ${VAR}
	// forms read (set or not), in order of first use. Command jobs do not
	// inherit them (CommandSpec.Withhold).
	Vars []string
}

// Job returns the job named name, or nil.
func (c *Config) Job(name string) *Job {
	for _, j := range c.Jobs {
		if j.Name == name {
			return j
		}
	}
	return nil
}

// RedisConfig is the `redis:` block. At most one of URL, Sentinel, Cluster and
// Quorum is set; none means "no Redis configured" (redcron run may then start
// an embedded server for a one-machine trial).
type RedisConfig struct {
	URL      string          // `url`: redis://, rediss:// or unix://
	Sentinel *SentinelConfig // `sentinel: {master, addrs}`
	Cluster  []string        // `cluster`: host:port seed addresses
	Quorum   []string        // `quorum`: URLs of independent masters (odd count >= 3 recommended; >= 3 required)
	Username string          // `username` (ACL)
	Password string          // `password`, `password_file` (read at load), or $REDCRON_REDIS_PASSWORD, which wins
	TLS      bool            // `tls`; implied by a rediss:// URL and by a tls: mapping
	Prefix   string          // `prefix`, no braces or spaces; "" means the scheduler's default, store.DefaultPrefix
	// TLSOptions is the `tls:` mapping (private CA, client certificate,
	// server name); nil for `tls: true|false`, which verifies the server
	// against the system's roots.
	TLSOptions *RedisTLS

	DialTimeout  time.Duration // `dial_timeout`, default 1s
	ReadTimeout  time.Duration // `read_timeout`, default 500ms
	WriteTimeout time.Duration // `write_timeout`, default 500ms
	MaxClockSkew time.Duration // `max_clock_skew`; 0 means the scheduler's default, scheduler.DefaultMaxClockSkew

	// MinReplicasAck is `min_replicas_ack`: how many Redis replicas must
	// acknowledge a claim (WAIT) before its run starts, so that a failover
	// cannot forget it; default 0 (off). URL and Sentinel modes only.
	MinReplicasAck int
	// AckTimeout is `ack_timeout`: how long a claim waits for those
	// acknowledgements; default 500ms.
	AckTimeout time.Duration
	// Unbatched is `batch_scripts: false`: every script call goes as an
	// EVALSHA of its own, for a proxy in front of several servers that
	// routes a script by its first key (locker.Options.Unbatched); default
	// false (batch_scripts: true).
	Unbatched bool
}

// RedisTLS is the `redis.tls:` mapping. Paths are resolved against the
// config file's directory; the decoder checks that the files can be read
// and parsed.
type RedisTLS struct {
	// CAFile is `ca_file`: PEM certificates of the CAs that may sign the
	// server's certificate; default the system's roots.
	CAFile string
	// CertFile and KeyFile are `cert_file` and `key_file`: a PEM client
	// certificate and its private key, for servers that require one
	// (tls-auth-clients); default none. One needs the other.
	CertFile, KeyFile string
	// ServerName is `server_name`: the name the server's certificate must
	// carry; default the host dialed.
	ServerName string
	// InsecureSkipVerify is `insecure_skip_verify`: accept any server
	// certificate (tests only); default false.
	InsecureSkipVerify bool
}

// SentinelConfig is the `redis.sentinel:` block.
type SentinelConfig struct {
	Master string   // `master`: the monitored master's name
	Addrs  []string // `addrs`: sentinel host:port addresses
}

func defaultRedis() RedisConfig {
	return RedisConfig{
		DialTimeout:  DefaultDialTimeout,
		ReadTimeout:  DefaultReadTimeout,
		WriteTimeout: DefaultWriteTimeout,
		AckTimeout:   DefaultAckTimeout,
	}
}
