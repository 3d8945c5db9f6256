package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestFingerprint(t *testing.T) {
	base := "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {A: '1', B: '2'}}\n"
	for _, tc := range []struct {
		name string
		src  string
		same bool
	}{
		{"same definition", base, true},
		{"same, env keys in another order", "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {B: '2', A: '1'}}\n", true},
		{"another schedule", "jobs:\n  a: {schedule: '@every 20s', command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
		{"another overlap", "jobs:\n  a: {schedule: '@every 10s', overlap: allow, command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
		{"another env value", "jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {A: '1', B: '3'}}\n", false},
		{"another zone", "jobs:\n  a: {schedule: '@every 10s', timezone: Europe/Paris, command: [/bin/true], env: {A: '1', B: '2'}}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustParse(t, base, nil).Jobs[0].Fingerprint()
			b := mustParse(t, tc.src, nil).Jobs[0].Fingerprint()
			if (a == b) != tc.same || len(a) != 16 {
				t.Errorf("fingerprints %s and %s: equal %v, want %v (16 hex digits)", a, b, a == b, tc.same)
			}
		})
	}
}

// fingerprintJSON is the definition's struct whose encoding/json text
// Fingerprint hashes (the implementation before it wrote the text itself).
func fingerprintJSON(t *testing.T, j *Job) string {
	t.Helper()
	type cmd struct {
		Argv        []string          `json:"argv"`
		Env         map[string]string `json:"env,omitempty"`
		Dir         string            `json:"dir,omitempty"`
		KillGrace   time.Duration     `json:"kill_grace"`
		OutputLimit int               `json:"output_limit"`
	}
	def := struct {
		Spec, Zone, Kind, Func, Args string
		Command                      *cmd
		HTTP                         *HTTPSpec
		LockTTL, Timeout             time.Duration
		CatchupWindow, Jitter        time.Duration
		Overlap                      Overlap
		Retry                        Retry
		History                      History
		Enabled                      bool
		OutputTail                   int
	}{
		Spec: j.Spec, Kind: j.Kind, Func: j.Func, HTTP: j.HTTP,
		LockTTL: j.LockTTL, Timeout: j.Timeout, CatchupWindow: j.CatchupWindow, Jitter: j.Jitter,
		Overlap: j.Overlap, Retry: j.Retry, History: j.History, Enabled: j.Enabled, OutputTail: j.OutputTail,
	}
	if j.Location != nil {
		def.Zone = j.Location.String()
	}
	if j.Args != nil {
		b, err := yaml.Marshal(j.Args)
		if err != nil {
			t.Fatal(err)
		}
		def.Args = string(b)
	}
	if c := j.Command; c != nil {
		def.Command = &cmd{Argv: c.Argv, Env: c.Env, Dir: c.Dir, KillGrace: c.KillGrace, OutputLimit: c.OutputLimit}
	}
	b, err := json.Marshal(def)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// TestFingerprintAsJSON: Fingerprint hashes the same text as encoding/json
// gives the definition, so replicas of earlier versions (which hashed
// that) see no drift; for every kind, nil and empty lists and maps, and
// strings that JSON escapes.
func TestFingerprintAsJSON(t *testing.T) {
	odd := []string{"", "plain", `quote " and \ back`, "<html> & </html>", "tab\tnl\ncr\rbs\bff\f", "\x00\x01\x1f\x7f",
		"é ü 世界", "bad \xff utf-8 \xc3", "line\u2028para\u2029", "emoji 🙂"}
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatalf("got %v, want the Europe/Paris zone (TestFingerprint needs it too)", err)
	}
	base := Job{Name: "a", Spec: "@every 10s", Location: time.UTC, Kind: KindFunc, Func: "test.noargs", LockTTL: DefaultLockTTL,
		Overlap: OverlapForbid, CatchupWindow: time.Minute, Enabled: true, Retry: Retry{Attempts: 3, Backoff: time.Second, MaxBackoff: time.Minute},
		History: History{Keep: 100, MaxAge: 168 * time.Hour}, OutputTail: 4096}
	cases := map[string]Job{"func": base}
	j := base
	j.Location, j.Enabled, j.Jitter, j.Timeout, j.Overlap = paris, false, 3*time.Second, time.Hour, OverlapReplace
	cases["zone and durations"] = j
	j = base
	j.Location = nil
	cases["no location"] = j
	j = base
	j.Args = &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "n"}, {Kind: yaml.ScalarNode, Value: "<3>"}}}
	cases["args"] = j
	for i, s := range odd {
		j = base
		j.Kind, j.Func, j.Spec = KindCommand, "", s
		j.Command = &CommandSpec{Argv: []string{"/bin/echo", s}, Env: map[string]string{s: s, "B": "2", "A": s}, Dir: s, KillGrace: time.Second, OutputLimit: 10}
		cases[fmt.Sprintf("command %d", i)] = j
		j = base
		j.Kind, j.Func = KindHTTP, ""
		j.HTTP = &HTTPSpec{Method: "POST", URL: "https://example.test/" + s, Headers: map[string]string{"X-" + s: s, "A": "1"}, Body: s, Expect: []int{200, 204}, Timeout: time.Second}
		cases[fmt.Sprintf("http %d", i)] = j
	}
	j = base
	j.Kind, j.Func, j.Command = KindCommand, "", &CommandSpec{Env: map[string]string{}}
	cases["command, nil argv, empty env"] = j
	j = base
	j.Kind, j.Func, j.HTTP = KindHTTP, "", &HTTPSpec{Headers: map[string]string{}, Expect: []int{}}
	cases["http, empty headers and expect"] = j
	j = base
	j.Kind, j.Func, j.HTTP = KindHTTP, "", &HTTPSpec{}
	cases["http, nil headers and expect"] = j
	for name, j := range cases {
		t.Run(name, func(t *testing.T) {
			if got, want := j.Fingerprint(), fingerprintJSON(t, &j); got != want {
				t.Errorf("got %s, want %s (encoding/json's text)", got, want)
			}
		})
	}
	for _, src := range []string{"jobs:\n  a: {schedule: '@every 10s', command: [/bin/true], env: {A: '1', B: '2'}}\n",
		"defaults: {retry: {attempts: 2}}\njobs:\n  a: {schedule: '0 3 * * *', timezone: Europe/Paris, http: {url: 'https://example.test/?a=1&b=<2>', headers: {X-A: b}}}\n"} {
		for _, j := range mustParse(t, src, nil).Jobs {
			if got, want := j.Fingerprint(), fingerprintJSON(t, j); got != want {
				t.Errorf("%s: got %s, want %s (encoding/json's text)", j.Name, got, want)
			}
		}
	}
}
