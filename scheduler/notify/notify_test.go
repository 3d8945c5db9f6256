package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/redcron/redcron/jobs"
	"github.com/redcron/redcron/scheduler/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor is how long a test waits for something that takes milliseconds
// before it fails rather than hangs.
const waitFor = 10 * time.Second

// request is what the receiver got.
type request struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a local webhook that answers with statuses in turn (the last
// one repeats) and records what it received.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	reqs     []request
	got      chan struct{} // one value per request
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses, got: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status = r.statuses[0]
			if len(r.statuses) > 1 {
				r.statuses = r.statuses[1:]
			}
		}
		r.reqs = append(r.reqs, request{method: req.Method, header: req.Header.Clone(), body: b})
		r.mu.Unlock()
		w.WriteHeader(status)
		// An answer that echoes what it got, secrets included, as some do.
		_, _ = w.Write([]byte("echo: " + req.Header.Get("Authorization") + " " + req.URL.String()))
		r.got <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// wait waits for n more requests.
func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.got:
		case <-time.After(waitFor):
			t.Fatalf("the receiver got %d requests, want %d more", len(r.requests()), n)
		}
	}
}

// logBuffer is a logger's output, safe for the worker's writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start returns a Notifier with tiny backoffs, running until the test ends
// (or until stop is called); stop waits for Run to return.
func start(t *testing.T, opts Options) (n *Notifier, logs *logBuffer, stop func()) {
	t.Helper()
	logs = &logBuffer{}
	opts.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	if opts.Backoff == 0 {
		opts.Backoff = time.Millisecond
	}
	n = New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitFor):
				t.Errorf("Run did not return within %s of its context's end", waitFor)
			}
		})
	}
	t.Cleanup(stop)
	return n, logs, stop
}

// waitStats waits until the notifier has given up or sent want.Sent +
// want.Failed events, then checks every count.
func waitStats(t *testing.T, n *Notifier, want Stats) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := n.Stats()
		if got.Sent+got.Failed >= want.Sent+want.Failed || time.Now().After(deadline) {
			if got != want {
				t.Fatalf("got stats %+v, want %+v", got, want)
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

var slot = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

func failure() Event {
	return Event{Kind: KindFailure, Record: store.Record{
		Job: "backup", Slot: slot, Outcome: store.OutcomeTimeout, Replica: "r1", Fence: 42, Attempts: 1,
		Started: slot.Add(1500 * time.Millisecond), DurationMS: 30000, Error: "context deadline exceeded",
	}}
}

// TestSendOnce: one event reaches the webhook once, as a JSON POST with the
// target's headers, its text, its kind and its record.
func TestSendOnce(t *testing.T) {
	recv := newReceiver(t)
	n, _, stop := start(t, Options{})
	target := Target{Webhook: recv.URL + "/hook", Headers: map[string]string{"Authorization": "Bearer t0k", "X-Team": "ops"}}
	if !n.Notify(target, failure()) {
		t.Fatal("Notify = false, want the event queued")
	}
	recv.wait(t, 1)
	waitStats(t, n, Stats{Sent: 1})
	stop()
	reqs := recv.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	checks := []struct{ name, got, want string }{
		{"method", r.method, http.MethodPost},
		{"Content-Type", r.header.Get("Content-Type"), "application/json"},
		{"Authorization", r.header.Get("Authorization"), "Bearer t0k"},
		{"X-Team", r.header.Get("X-Team"), "ops"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	var got struct {
		Text   string          `json:"text"`
		Event  string          `json:"event"`
		Record json.RawMessage `json:"record"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if want := "redcron: job backup failed (timeout) at 2026-11-30T03:00:00Z on replica r1, fence 42: context deadline exceeded"; got.Text != want {
		t.Errorf("text: got %q, want %q", got.Text, want)
	}
	if got.Event != KindFailure {
		t.Errorf("event: got %q, want %q", got.Event, KindFailure)
	}
	if want := failure().Record.Encode(); string(got.Record) != want {
		t.Errorf("record: got %s, want %s", got.Record, want)
	}
}

// TestBodyRedacted: with Options.Secrets, a secret left in the record
// (error, output, hence the text line) is posted as its ${VAR}, and the
// body stays valid JSON.
func TestBodyRedacted(t *testing.T) {
	const secret = `pa"ss<word>1`
	recv := newReceiver(t)
	sec := jobs.NewSecrets()
	sec.Add(secret, "${PW}")
	n, _, stop := start(t, Options{Secrets: sec})
	ev := failure()
	ev.Record.Error = "auth " + secret + " refused"
	ev.Record.Output = "login with " + secret
	if !n.Notify(Target{Webhook: recv.URL}, ev) {
		t.Fatal("Notify = false, want the event queued")
	}
	recv.wait(t, 1)
	stop()
	body := recv.requests()[0].body
	var got struct {
		Text   string       `json:"text"`
		Record store.Record `json:"record"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	checks := []struct{ name, got, want string }{
		{"text", got.Text, "redcron: job backup failed (timeout) at 2026-11-30T03:00:00Z on replica r1, fence 42: auth ${PW} refused"},
		{"error", got.Record.Error, "auth ${PW} refused"},
		{"output", got.Record.Output, "login with ${PW}"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

// TestRetry: network errors, 5xx and 429 are retried with backoff up to
// MaxAttempts; a 3xx or another 4xx is not.
func TestRetry(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		attempts int // MaxAttempts
		want     Stats
		requests int
	}{
		{"500 twice then 200", []int{500, 500, 200}, 5, Stats{Sent: 1}, 3},
		{"429 then 204", []int{429, 204}, 5, Stats{Sent: 1}, 2},
		{"503 until given up", []int{503}, 3, Stats{Failed: 1}, 3},
		{"400 is not retried", []int{400, 200}, 5, Stats{Failed: 1}, 1},
		{"404 is not retried", []int{404, 200}, 5, Stats{Failed: 1}, 1},
		{"a redirect is not followed", []int{302, 200}, 5, Stats{Failed: 1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recv := newReceiver(t, tt.statuses...)
			n, _, stop := start(t, Options{MaxAttempts: tt.attempts})
			if !n.Notify(Target{Webhook: recv.URL}, failure()) {
				t.Fatal("Notify = false, want the event queued")
			}
			recv.wait(t, tt.requests)
			waitStats(t, n, tt.want)
			stop()
			if got := len(recv.requests()); got != tt.requests {
				t.Errorf("got %d requests, want %d", got, tt.requests)
			}
		})
	}
	t.Run("network error", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL
		dead.Close() // nothing listens there now
		n, logs, stop := start(t, Options{MaxAttempts: 3})
		n.Notify(Target{Webhook: url + "/hook"}, failure())
		waitStats(t, n, Stats{Failed: 1})
		stop()
		if got := strings.Count(logs.String(), `"notification not sent: retrying"`); got != 2 {
			t.Errorf("got %d retries logged, want 2:\n%s", got, logs)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer slow.Close()
		defer close(release)
		n, logs, stop := start(t, Options{MaxAttempts: 2})
		n.Notify(Target{Webhook: slow.URL, Timeout: 20 * time.Millisecond}, failure())
		waitStats(t, n, Stats{Failed: 1})
		stop()
		if !strings.Contains(logs.String(), `"error":"no answer within 20ms"`) {
			t.Errorf("got logs\n%s\nwant the timeout named", logs)
		}
	})
}

// TestBackoffDoubles: the delay before each retry doubles up to MaxBackoff.
func TestBackoffDoubles(t *testing.T) {
	recv := newReceiver(t, 500)
	n, logs, stop := start(t, Options{MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: 3 * time.Millisecond})
	n.Notify(Target{Webhook: recv.URL}, failure())
	waitStats(t, n, Stats{Failed: 1})
	stop()
	var got []float64
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct {
			Msg   string  `json:"message"`
			Retry float64 `json:"retry_in_ms"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "notification not sent: retrying" {
			got = append(got, e.Retry)
		}
	}
	want := []float64{1, 2, 3, 3}
	if len(got) != len(want) {
		t.Fatalf("got delays %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got delays %v, want %v", got, want)
			break
		}
	}
}

// TestQueueFullDrops: with nobody sending, a full queue drops at once
// (Notify returns false), counts the drops, and warns once per 10s.
func TestQueueFullDrops(t *testing.T) {
	const size = 3
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	n := New(Options{QueueLen: size, Logger: zerolog.New(logs), Registerer: reg})
	target := Target{Webhook: "http://127.0.0.1:1/hook"}
	for i := range size {
		if !n.Notify(target, failure()) {
			t.Fatalf("Notify %d = false, want queued (queue of %d)", i+1, size)
		}
	}
	for i := range 5 {
		if n.Notify(target, failure()) {
			t.Fatalf("Notify %d = true on a full queue, want false", size+i+1)
		}
	}
	if got, want := n.Stats(), (Stats{Dropped: 5}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	if got := strings.Count(logs.String(), `"level":"warn"`); got != 1 {
		t.Errorf("got %d warnings, want 1:\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), `"dropped":1,`) {
		t.Errorf("got %s, want the first warning to count 1 drop", logs)
	}
	if got := counter(t, reg, "dropped"); got != 5 {
		t.Errorf("redcron_notifications_total{result=dropped}: got %v, want 5", got)
	}
	if n.Notify(Target{}, failure()) {
		t.Error("Notify without a webhook = true, want false")
	}
}

// counter reads redcron_notifications_total{result} from reg.
func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "redcron_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no redcron_notifications_total{result=%q}", result)
	return 0
}

// TestMetrics: sent and failed are counted, every result starts at 0, and
// two notifiers may share a registry.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_ = New(Options{Registerer: reg})
	for _, r := range []string{"sent", "failed", "dropped"} {
		if got := counter(t, reg, r); got != 0 {
			t.Errorf("%s: got %v at start, want 0", r, got)
		}
	}
	ok, bad := newReceiver(t, 200), newReceiver(t, 400)
	n, _, stop := start(t, Options{Registerer: reg})
	n.Notify(Target{Webhook: ok.URL}, failure())
	n.Notify(Target{Webhook: bad.URL}, failure())
	waitStats(t, n, Stats{Sent: 1, Failed: 1})
	stop()
	for r, want := range map[string]float64{"sent": 1, "failed": 1, "dropped": 0} {
		if got := counter(t, reg, r); got != want {
			t.Errorf("%s: got %v, want %v", r, got, want)
		}
	}
}

// TestRunStops: Run returns when its context ends, also in the middle of a
// send to a webhook that does not answer; the events still queued are
// dropped, counted and logged, and later ones are dropped at once.
func TestRunStops(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer stuck.Close()
	defer close(release)

	n, logs, stop := start(t, Options{})
	target := Target{Webhook: stuck.URL, Timeout: time.Hour}
	for range 4 {
		n.Notify(target, failure())
	}
	select {
	case <-arrived:
	case <-time.After(waitFor):
		t.Fatal("the first event never arrived")
	}
	stop() // fails the test if Run does not return
	if got, want := n.Stats(), (Stats{Failed: 1, Dropped: 3}); got != want {
		t.Errorf("got stats %+v, want %+v", got, want)
	}
	if !strings.Contains(logs.String(), `"dropped":3,"message":"notifier stopped"`) {
		t.Errorf("got logs\n%s\nwant a final line with 3 dropped", logs)
	}
	if n.Notify(target, failure()) {
		t.Error("Notify after Run ended = true, want false")
	}
	if got := n.Stats().Dropped; got != 4 {
		t.Errorf("got %d dropped, want 4", got)
	}
}

// TestRunStopsIdle: Run returns when its context ends with nothing queued.
func TestRunStopsIdle(t *testing.T) {
	_, logs, stop := start(t, Options{})
	stop()
	if !strings.Contains(logs.String(), `"dropped":0,"message":"notifier stopped"`) {
		t.Errorf("got logs\n%s\nwant the final line", logs)
	}
}

// TestNoSecretsLogged: the webhook's path, query and user info and the
// header values never reach the logs, even when the webhook echoes them;
// its host does.
func TestNoSecretsLogged(t *testing.T) {
	secrets := []string{"s3cr3tpath", "k3yq", "hunter2", "b34r3r", "xt0ken"}
	for _, status := range []int{400, 500} {
		recv := newReceiver(t, status)
		n, logs, stop := start(t, Options{MaxAttempts: 2})
		host := strings.TrimPrefix(recv.URL, "http://")
		hook := "http://bot:hunter2@" + host + "/services/T0/s3cr3tpath?token=k3yq"
		n.Notify(Target{Webhook: hook, Headers: map[string]string{"Authorization": "Bearer b34r3r", "X-Token": "xt0ken"}}, failure())
		waitStats(t, n, Stats{Failed: 1})
		stop()
		// A network error quotes the URL too.
		dead := httptest.NewServer(http.NotFoundHandler())
		deadHost := strings.TrimPrefix(dead.URL, "http://")
		dead.Close()
		n2, logs2, stop2 := start(t, Options{MaxAttempts: 1})
		n2.Notify(Target{Webhook: "http://bot:hunter2@" + deadHost + "/s3cr3tpath?token=k3yq"}, failure())
		waitStats(t, n2, Stats{Failed: 1})
		stop2()
		all := logs.String() + logs2.String()
		for _, s := range secrets {
			if strings.Contains(all, s) {
				t.Errorf("status %d: got logs\n%s\nwant no %q in them", status, all, s)
			}
		}
		if !strings.Contains(logs.String(), `"webhook_host":"`+host+`"`) {
			t.Errorf("status %d: got logs\n%s\nwant the host %s named", status, logs, host)
		}
	}
}

// TestText: the one-line message of each kind.
func TestText(t *testing.T) {
	rec := failure().Record
	long := strings.Repeat("é", 250)
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"failure", failure(), "redcron: job backup failed (timeout) at 2026-11-30T03:00:00Z on replica r1, fence 42: context deadline exceeded"},
		{"failure with reason, attempts, manual", Event{Kind: KindFailure, Record: func() store.Record {
			r := rec
			r.Outcome, r.Reason, r.Attempts, r.Manual, r.Error = store.OutcomeLeaseLost, store.ReasonReplaced, 3, true, "lost\n  <lease> & more"
			return r
		}()}, "redcron: job backup failed (lease_lost: replaced) at 2026-11-30T03:00:00Z (manual trigger) on replica r1, fence 42, after 3 attempts: lost &lt;lease&gt; &amp; more"},
		{"long error cut at 200 characters", Event{Kind: KindFailure, Record: func() store.Record {
			r := rec
			r.Error = long
			return r
		}()}, "redcron: job backup failed (timeout) at 2026-11-30T03:00:00Z on replica r1, fence 42: " + strings.Repeat("é", 200) + "…"},
		{"recovery", Event{Kind: KindRecovery, Record: store.Record{Job: "backup", Slot: slot, Outcome: store.OutcomeOK, Replica: "r2", Fence: 43, Attempts: 1}},
			"redcron: job backup recovered (ok) at 2026-11-30T03:00:00Z on replica r2, fence 43"},
		{"skipped", Event{Kind: KindSkipped, Record: store.Record{Job: "backup", Slot: slot, Outcome: store.OutcomeSkipped, Reason: store.ReasonOverlap}},
			"redcron: job backup skipped (overlap) at 2026-11-30T03:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.ev); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKindOf: which records notify, and as what.
func TestKindOf(t *testing.T) {
	tests := []struct {
		outcome, prev, want string
	}{
		{store.OutcomeError, "", KindFailure},
		{store.OutcomeTimeout, store.OutcomeOK, KindFailure},
		{store.OutcomePanic, store.OutcomeError, KindFailure},
		{store.OutcomeLeaseLost, "", KindFailure},
		{store.OutcomeShutdown, "", KindFailure},
		{store.OutcomeCanceled, "", KindFailure},
		{store.OutcomeSkipped, store.OutcomeError, KindSkipped},
		{store.OutcomeOK, store.OutcomeError, KindRecovery},
		{store.OutcomeOK, store.OutcomeLeaseLost, KindRecovery},
		{store.OutcomeOK, store.OutcomeOK, ""},
		{store.OutcomeOK, store.OutcomeSkipped, ""},
		{store.OutcomeOK, "", ""},
		{store.OutcomeRunning, store.OutcomeError, ""},
	}
	for _, tt := range tests {
		if got := KindOf(store.Record{Outcome: tt.outcome}, tt.prev); got != tt.want {
			t.Errorf("KindOf(%s after %q): got %q, want %q", tt.outcome, tt.prev, got, tt.want)
		}
	}
}

// TestTargetOf: a job's notify: block is a target for the events it lists.
func TestTargetOf(t *testing.T) {
	nb := &jobs.Notify{On: []string{jobs.NotifyFailure}, Webhook: "https://h.example/x", Headers: map[string]string{"A": "b"}, Timeout: 2 * time.Second}
	got, ok := TargetOf(nb, KindFailure)
	if !ok || got.Webhook != nb.Webhook || got.Headers["A"] != "b" || got.Timeout != 2*time.Second {
		t.Errorf("got %+v, %v, want the block's target", got, ok)
	}
	for _, c := range []struct {
		n    *jobs.Notify
		kind string
	}{{nb, KindRecovery}, {nil, KindFailure}, {&jobs.Notify{On: []string{}, Webhook: "https://h.example/x"}, KindFailure}} {
		if _, ok := TargetOf(c.n, c.kind); ok {
			t.Errorf("TargetOf(%v, %s): got ok, want none", c.n, c.kind)
		}
	}
}

// TestTrimmedRecord: a queued event keeps the tail of the output and the
// start of the error, bounded.
func TestTrimmedRecord(t *testing.T) {
	r := failure().Record
	r.Output = strings.Repeat("a", 5000) + "END"
	r.Error = strings.Repeat("e", 5000)
	got := trimRecord(r)
	if !strings.HasPrefix(got.Output, "…") || !strings.HasSuffix(got.Output, "END") || len(got.Output) != MaxOutput+len("…") {
		t.Errorf("output: got %d bytes ending %q, want the last %d bytes after …", len(got.Output), got.Output[len(got.Output)-5:], MaxOutput)
	}
	if len(got.Error) != store.MaxErrorLen+len("…") {
		t.Errorf("error: got %d bytes, want %d and …", len(got.Error), store.MaxErrorLen)
	}
}
