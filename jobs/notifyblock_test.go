package jobs

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNotifyDecode: the notify: block's defaults, its keys, and its merge
// over the defaults: block's.
func TestNotifyDecode(t *testing.T) {
	const job = "schedule: '@hourly', func: test.noargs"
	tests := []struct {
		name, src string
		env       map[string]string
		want      map[string]*Notify // job name -> its Notify
	}{
		{
			name: "absent",
			src:  "jobs:\n  a: {" + job + "}\n",
			want: map[string]*Notify{"a": nil},
		},
		{
			name: "webhook only: defaults",
			src:  "jobs:\n  a: {" + job + ", notify: {webhook: 'https://hooks.example.com/T1/B2/s3cr3t'}}\n",
			want: map[string]*Notify{"a": {On: []string{NotifyFailure}, Webhook: "https://hooks.example.com/T1/B2/s3cr3t", Timeout: 5 * time.Second}},
		},
		{
			name: "every key",
			src: "jobs:\n  a: {" + job + ", notify: {on: [skipped, failure, recovery], webhook: 'http://127.0.0.1:9/hook'," +
				" headers: {Authorization: 'Bearer ${TOKEN}', X-Team: ops}, timeout: 2s}}\n",
			env: map[string]string{"TOKEN": "t0k"},
			want: map[string]*Notify{"a": {
				On: []string{NotifySkipped, NotifyFailure, NotifyRecovery}, Webhook: "http://127.0.0.1:9/hook",
				Headers: map[string]string{"Authorization": "Bearer t0k", "X-Team": "ops"}, Timeout: 2 * time.Second,
			}},
		},
		{
			name: "webhook from the environment",
			src:  "jobs:\n  a: {" + job + ", notify: {webhook: '${HOOK}'}}\n",
			env:  map[string]string{"HOOK": "https://hooks.example.com/secret"},
			want: map[string]*Notify{"a": {On: []string{NotifyFailure}, Webhook: "https://hooks.example.com/secret", Timeout: 5 * time.Second}},
		},
		{
			name: "defaults merge key by key, headers entry by entry",
			src: "defaults:\n  notify: {on: [failure, recovery], webhook: 'https://h.example/d', headers: {A: '1', B: '2'}, timeout: 3s}\n" +
				"jobs:\n" +
				"  a: {" + job + "}\n" +
				"  b: {" + job + ", notify: {on: [skipped], headers: {B: '20', C: '30'}}}\n" +
				"  c: {" + job + ", notify: {webhook: 'https://other.example/c'}}\n" +
				"  d: {" + job + ", notify: {on: []}}\n",
			want: map[string]*Notify{
				"a": {On: []string{NotifyFailure, NotifyRecovery}, Webhook: "https://h.example/d", Headers: map[string]string{"A": "1", "B": "2"}, Timeout: 3 * time.Second},
				"b": {On: []string{NotifySkipped}, Webhook: "https://h.example/d", Headers: map[string]string{"A": "1", "B": "20", "C": "30"}, Timeout: 3 * time.Second},
				"c": {On: []string{NotifyFailure, NotifyRecovery}, Webhook: "https://other.example/c", Headers: map[string]string{"A": "1", "B": "2"}, Timeout: 3 * time.Second},
				"d": {On: []string{}, Webhook: "https://h.example/d", Headers: map[string]string{"A": "1", "B": "2"}, Timeout: 3 * time.Second},
			},
		},
		{
			name: "on: [] needs no webhook",
			src:  "jobs:\n  a: {" + job + ", notify: {on: []}}\n",
			want: map[string]*Notify{"a": {On: []string{}, Timeout: 5 * time.Second}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.src, tt.env)
			if got, want := len(cfg.Jobs), len(tt.want); got != want {
				t.Fatalf("got %d jobs, want %d", got, want)
			}
			for _, j := range cfg.Jobs {
				want, ok := tt.want[j.Name]
				if !ok {
					t.Fatalf("got job %s, want none of that name", j.Name)
				}
				if !notifyEqual(j.Notify, want) {
					t.Errorf("job %s: got %s, want %s", j.Name, dumpNotify(j.Notify), dumpNotify(want))
				}
			}
		})
	}
}

func notifyEqual(a, b *Notify) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.On, b.On) && a.Webhook == b.Webhook && a.Timeout == b.Timeout &&
		maps.Equal(a.Headers, b.Headers)
}

// dumpNotify shows every field (tests only: it prints the webhook and the
// header values).
func dumpNotify(n *Notify) string {
	if n == nil {
		return "<nil>"
	}
	var h []string
	for _, k := range slices.Sorted(maps.Keys(n.Headers)) {
		h = append(h, k+"="+n.Headers[k])
	}
	return "{on=[" + strings.Join(n.On, " ") + "] webhook=" + n.Webhook + " headers=[" + strings.Join(h, " ") + "] timeout=" + n.Timeout.String() + "}"
}

// TestNotifyErrors: each bad notify: block is one problem naming the file,
// line, job and field; no message quotes the webhook or a header value.
func TestNotifyErrors(t *testing.T) {
	const job = "schedule: '@hourly', func: test.noargs"
	const hook = "webhook: 'https://h.example/x'"
	env := map[string]string{"HOOK": "ftp://user:hunter2@h.example/s3cr3t", "NOHOST": "https:///s3cr3t"}
	tests := []struct {
		name, src, want string
	}{
		{"not a mapping", "notify: https://h.example/x",
			`test.yaml:2: job a: field notify: want a mapping {on, webhook, headers, timeout}, got the string "https://h.example/x"`},
		{"missing webhook", "notify: {on: [failure, skipped]}",
			"test.yaml:2: job a: field notify.webhook: missing: an absolute http:// or https:// URL to post failure and skipped notifications to (or on: [] for none)"},
		{"empty webhook", "notify: {webhook: ''}",
			"test.yaml:2: job a: field notify.webhook: empty URL"},
		{"webhook not a string", "notify: {webhook: [x]}",
			"test.yaml:2: job a: field notify.webhook: want a string, got a list"},
		{"webhook scheme", "notify: {webhook: '${HOOK}'}",
			"test.yaml:2: job a: field notify.webhook: want an absolute http:// or https:// URL (not shown: it may hold a secret)"},
		{"webhook relative", "notify: {webhook: '/hooks/s3cr3t'}",
			"test.yaml:2: job a: field notify.webhook: want an absolute http:// or https:// URL (not shown: it may hold a secret)"},
		{"webhook without host", "notify: {webhook: '${NOHOST}'}",
			"test.yaml:2: job a: field notify.webhook: the URL has no host (not shown: it may hold a secret)"},
		{"webhook unparsable", "notify: {webhook: 'http://h.example/%zz-s3cr3t'}",
			"test.yaml:2: job a: field notify.webhook: bad URL (not shown: it may hold a secret)"},
		{"on not a list", "notify: {on: failure, " + hook + "}",
			`test.yaml:2: job a: field notify.on: want a list of events among failure, recovery and skipped, like [failure, recovery], got the string "failure"`},
		{"unknown event", "notify: {on: [failure, success], " + hook + "}",
			`test.yaml:2: job a: field notify.on[1]: unknown event "success": want failure, recovery or skipped`},
		{"event twice", "notify: {on: [failure, failure], " + hook + "}",
			`test.yaml:2: job a: field notify.on[1]: event "failure" is listed twice`},
		{"event not a string", "notify: {on: [{a: b}], " + hook + "}",
			"test.yaml:2: job a: field notify.on[0]: want a string, got a mapping"},
		{"headers not a mapping", "notify: {headers: [a], " + hook + "}",
			"test.yaml:2: job a: field notify.headers: want a mapping of strings, got a list"},
		{"bad header name", "notify: {headers: {'X Bad': s3cr3t}, " + hook + "}",
			`test.yaml:2: job a: field notify.headers: bad header name "X Bad"`},
		{"content type", "notify: {headers: {content-type: text/plain}, " + hook + "}",
			"test.yaml:2: job a: field notify.headers: content-type: set by redcron (the body is JSON)"},
		{"header line break", "notify: {headers: {X-Token: \"s3cr3t\\nX-Evil: 1\"}, " + hook + "}",
			"test.yaml:2: job a: field notify.headers: header X-Token: value holds a line break"},
		{"zero timeout", "notify: {timeout: 0s, " + hook + "}",
			"test.yaml:2: job a: field notify.timeout: must be positive (notifications are always bounded), got 0s"},
		{"negative timeout", "notify: {timeout: -1s, " + hook + "}",
			"test.yaml:2: job a: field notify.timeout: must be positive (notifications are always bounded), got -1s"},
		{"bad timeout", "notify: {timeout: soon, " + hook + "}",
			`test.yaml:2: job a: field notify.timeout: bad duration "soon": want a number with a unit, like 30s or 1m30s`},
		{"unknown key", "notify: {url: x, " + hook + "}",
			"test.yaml:2: job a: field notify.url: unknown key (known: headers, on, timeout, webhook)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, "jobs:\n  a: {"+job+", "+tt.src+"}\n", env)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), &ConfigError{Problems: ps})
			}
			got := ps[0].Error()
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "s3cr3t") || strings.Contains(got, "hunter2") {
				t.Errorf("got %q, want no secret in it", got)
			}
		})
	}
}

// TestNotifyInDefaults: a bad notify: block in defaults: is reported once,
// at its line, as the defaults' problem.
func TestNotifyInDefaults(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"missing webhook", "defaults:\n  notify: {on: [recovery]}\njobs:\n  a: {schedule: '@hourly', func: test.noargs}\n  b: {schedule: '@hourly', func: test.noargs}\n",
			"test.yaml:2: defaults: field notify.webhook: missing: an absolute http:// or https:// URL to post recovery notifications to (or on: [] for none)"},
		{"bad event", "defaults:\n  notify:\n    webhook: 'https://h.example/x'\n    on: [failed]\njobs:\n  a: {schedule: '@hourly', func: test.noargs}\n",
			`test.yaml:4: defaults: field notify.on[0]: unknown event "failed": want failure, recovery or skipped`},
		{"job turns it on without a webhook", "defaults:\n  notify: {on: []}\njobs:\n  a: {schedule: '@hourly', func: test.noargs}\n  b:\n    schedule: '@hourly'\n    func: test.noargs\n    notify: {on: [failure]}\n",
			"test.yaml:8: job b: field notify.webhook: missing: an absolute http:// or https:// URL to post failure notifications to (or on: [] for none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problemsOf(t, tt.src, nil)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(ps), &ConfigError{Problems: ps})
			}
			if got := ps[0].Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestNotifyWants: Wants is false for a nil block, an empty on: list and
// events not listed.
func TestNotifyWants(t *testing.T) {
	full := &Notify{On: []string{NotifyFailure, NotifySkipped}, Webhook: "https://h.example/x"}
	tests := []struct {
		name string
		n    *Notify
		kind string
		want bool
	}{
		{"nil", nil, NotifyFailure, false},
		{"listed", full, NotifyFailure, true},
		{"listed too", full, NotifySkipped, true},
		{"not listed", full, NotifyRecovery, false},
		{"empty on", &Notify{On: []string{}, Webhook: "https://h.example/x"}, NotifyFailure, false},
		{"no webhook", &Notify{On: []string{NotifyFailure}}, NotifyFailure, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.n.Wants(tt.kind); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNotifyString: String shows the webhook's host and the header names,
// never the webhook's path, user info or query, nor a header value.
func TestNotifyString(t *testing.T) {
	n := &Notify{
		On:      []string{NotifyFailure, NotifyRecovery},
		Webhook: "https://bot:hunter2@hooks.example.com:8443/services/T0/B1/s3cr3t?token=k3y",
		Headers: map[string]string{"X-Token": "t0ps3cr3t", "Authorization": "Bearer b34r3r"},
		Timeout: 5 * time.Second,
	}
	got := n.String()
	want := "notify on [failure, recovery] to hooks.example.com:8443 with headers Authorization, X-Token, timeout 5s"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var nilN *Notify
	if got, want := nilN.String(), "notify: none"; got != want {
		t.Errorf("nil: got %q, want %q", got, want)
	}
	hosts := []struct{ raw, want string }{
		{"https://hooks.slack.com/services/T/B/x", "hooks.slack.com"},
		{"", "(none)"},
		{"http://h/%zz", "(bad URL)"},
		{"/relative/s3cr3t", "(bad URL)"},
	}
	for _, h := range hosts {
		if got := WebhookHost(h.raw); got != h.want {
			t.Errorf("WebhookHost: got %q, want %q", got, h.want)
		}
	}
}

// TestNotifyNotInFingerprint: notify: does not change how a job runs, so
// it does not change the job's fingerprint.
func TestNotifyNotInFingerprint(t *testing.T) {
	base := "jobs:\n  a: {schedule: '@hourly', func: test.noargs%s}\n"
	plain := mustParse(t, strings.Replace(base, "%s", "", 1), nil).Jobs[0]
	notified := mustParse(t, strings.Replace(base, "%s", ", notify: {on: [failure, skipped], webhook: 'https://h.example/x'}", 1), nil).Jobs[0]
	if got, want := notified.Fingerprint(), plain.Fingerprint(); got != want {
		t.Errorf("got fingerprint %s with notify:, want %s as without", got, want)
	}
}
