package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redcron/redcron/internal/redistest"
)

// tlsFixture writes a PKI and a few bad files into a directory, and
// parses config sources as if they were a jobs.yaml in it.
type tlsFixture struct {
	dir string
	pki *redistest.PKI
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{pki: redistest.GeneratePKI(t)}
	f.dir = f.pki.Dir
	for name, body := range map[string]string{
		"empty.pem":   "",
		"garbage.pem": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
	} {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *tlsFixture) parse(tls string) (*Config, error) {
	src := "redis:\n  url: redis://127.0.0.1:6379/0\n  tls: " + tls + "\njobs:\n  a: {schedule: \"@every 10s\", func: test.noargs}\n"
	return Parse(filepath.Join(f.dir, "jobs.yaml"), []byte(src), nil)
}

func TestParseRedisTLS(t *testing.T) {
	f := newTLSFixture(t)
	for _, tc := range []struct {
		name string
		tls  string
		want RedisTLS
	}{
		{"private CA, relative path", "{ca_file: ca.pem}", RedisTLS{CAFile: f.pki.CAFile}},
		{"client certificate", "{ca_file: ca.pem, cert_file: client.pem, key_file: client-key.pem, server_name: redis.internal}",
			RedisTLS{CAFile: f.pki.CAFile, CertFile: f.pki.ClientCert, KeyFile: f.pki.ClientKey, ServerName: "redis.internal"}},
		{"absolute path", "{ca_file: " + f.pki.CAFile + "}", RedisTLS{CAFile: f.pki.CAFile}},
		{"skip verification", "{insecure_skip_verify: true}", RedisTLS{InsecureSkipVerify: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := f.parse(tc.tls)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !cfg.Redis.TLS {
				t.Errorf("Redis.TLS = false, want true (a tls: mapping turns TLS on)")
			}
			if got := cfg.Redis.TLSOptions; got == nil || *got != tc.want {
				t.Errorf("Redis.TLSOptions = %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		tls       string
		wantTLS   bool
		wantOpts  bool
		wantWarns int
	}{
		{"true", true, false, 0},
		{"false", false, false, 0},
		{"{insecure_skip_verify: true}", true, true, 1},
	} {
		t.Run("tls: "+tc.tls, func(t *testing.T) {
			cfg, err := f.parse(tc.tls)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if cfg.Redis.TLS != tc.wantTLS || (cfg.Redis.TLSOptions != nil) != tc.wantOpts {
				t.Errorf("got TLS %v, options %+v; want TLS %v, options set %v", cfg.Redis.TLS, cfg.Redis.TLSOptions, tc.wantTLS, tc.wantOpts)
			}
			if len(cfg.Warnings) != tc.wantWarns {
				t.Errorf("got warnings %v, want %d", cfg.Warnings, tc.wantWarns)
			}
		})
	}
}

func TestParseRedisTLSProblems(t *testing.T) {
	f := newTLSFixture(t)
	file := filepath.Join(f.dir, "jobs.yaml")
	for _, tc := range []struct {
		name string
		tls  string
		want string
	}{
		{"unreadable CA file", "{ca_file: missing.pem}", file + ":3: field redis.tls.ca_file: cannot read the CA file: open " + filepath.Join(f.dir, "missing.pem")},
		{"no certificate in the CA file", "{ca_file: empty.pem}", file + ":3: field redis.tls.ca_file: no PEM certificate in the CA file"},
		{"bad certificate in the CA file", "{ca_file: garbage.pem}", file + ":3: field redis.tls.ca_file: bad certificate 1 in the CA file"},
		{"a key is no CA", "{ca_file: client-key.pem}", file + ":3: field redis.tls.ca_file: no PEM certificate"},
		{"cert without key", "{cert_file: client.pem}", file + ":3: field redis.tls.key_file: missing: cert_file needs the private key"},
		{"key without cert", "{key_file: client-key.pem}", file + ":3: field redis.tls.cert_file: missing: key_file needs the certificate"},
		{"key of another certificate", "{cert_file: client.pem, key_file: server-key.pem}", file + ":3: field redis.tls.cert_file: bad client certificate or key"},
		{"unreadable key", "{cert_file: client.pem, key_file: nokey.pem}", file + ":3: field redis.tls.key_file: cannot read the client key"},
		{"unknown key", "{ca: ca.pem}", file + ":3: field redis.tls.ca: unknown key (known: ca_file, cert_file, insecure_skip_verify, key_file, server_name)"},
		{"a list", "[ca.pem]", file + ":3: field redis.tls: want true, false or a mapping {ca_file, cert_file, key_file, server_name, insecure_skip_verify}"},
		{"empty path", `{ca_file: ""}`, file + ":3: field redis.tls.ca_file: empty path"},
		{"a device", "{ca_file: /dev/zero}", file + ":3: field redis.tls.ca_file: cannot read the CA file: /dev/zero is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.parse(tc.tls)
			if err == nil {
				t.Fatalf("Parse: got nil error, want %q", tc.want)
			}
			if got := err.Error(); !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the message quotes a key: %q", err)
			}
		})
	}
}

// parseRedisBlock parses a config whose redis: block is redis: when
// problem is empty, it returns the config, else it checks that the
// problems include problem and returns false.
func parseRedisBlock(t *testing.T, redis, problem string) (*Config, bool) {
	t.Helper()
	src := "\nredis: " + redis + "\njobs:\n  a: {schedule: \"@every 10s\", func: test.noargs}\n"
	if problem == "" {
		return mustParse(t, src, nil), true
	}
	var all []string
	for _, p := range problemsOf(t, src, nil) {
		all = append(all, p.Error())
	}
	if got := strings.Join(all, "\n"); !strings.Contains(got, problem) {
		t.Errorf("got problems %q, want %q", got, problem)
	}
	return nil, false
}

func TestParseMinReplicasAck(t *testing.T) {
	for _, tc := range []struct {
		name, redis string
		want        int
		wantTimeout string
		problem     string
	}{
		{"default off", `{url: "redis://127.0.0.1:6379/0"}`, 0, "500ms", ""},
		{"url", `{url: "redis://127.0.0.1:6379/0", min_replicas_ack: 1, ack_timeout: 200ms}`, 1, "200ms", ""},
		{"sentinel", `{sentinel: {master: m, addrs: ["127.0.0.1:26379"]}, min_replicas_ack: 2}`, 2, "500ms", ""},
		{"negative", `{url: "redis://127.0.0.1:6379/0", min_replicas_ack: -1}`, 0, "", "test.yaml:2: field redis.min_replicas_ack: must not be negative, got -1"},
		{"cluster", `{cluster: ["127.0.0.1:7000"], min_replicas_ack: 1}`, 0, "", "test.yaml:2: field redis.min_replicas_ack: works with url and sentinel only"},
		{"quorum", `{quorum: ["redis://127.0.0.1:1", "redis://127.0.0.1:2", "redis://127.0.0.1:3"], min_replicas_ack: 1}`, 0, "", "field redis.min_replicas_ack: works with url and sentinel only"},
		{"zero timeout", `{url: "redis://127.0.0.1:6379/0", min_replicas_ack: 1, ack_timeout: 0s}`, 0, "", "field redis.ack_timeout: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok := parseRedisBlock(t, tc.redis, tc.problem)
			if !ok {
				return
			}
			if cfg.Redis.MinReplicasAck != tc.want || cfg.Redis.AckTimeout.String() != tc.wantTimeout {
				t.Errorf("got min_replicas_ack %d, ack_timeout %v; want %d, %s", cfg.Redis.MinReplicasAck, cfg.Redis.AckTimeout, tc.want, tc.wantTimeout)
			}
		})
	}
}

func TestParseBatchScripts(t *testing.T) {
	for _, tc := range []struct {
		name, redis string
		unbatched   bool
		problem     string
	}{
		{"default batched", `{url: "redis://127.0.0.1:6379/0"}`, false, ""},
		{"on", `{url: "redis://127.0.0.1:6379/0", batch_scripts: true}`, false, ""},
		{"off", `{url: "redis://127.0.0.1:6379/0", batch_scripts: false}`, true, ""},
		{"not a boolean", `{url: "redis://127.0.0.1:6379/0", batch_scripts: sometimes}`, false, "test.yaml:2: field redis.batch_scripts:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ok := parseRedisBlock(t, tc.redis, tc.problem)
			if !ok {
				return
			}
			if got := cfg.Redis.Unbatched; got != tc.unbatched {
				t.Errorf("got Unbatched %v, want %v", got, tc.unbatched)
			}
		})
	}
}
