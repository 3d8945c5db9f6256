package notify

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/redcron/redcron/jobs"
)

// maxSnippet is how much of a refusing webhook's answer is logged.
const maxSnippet = 200

// send posts one event, retrying network errors, 5xx and 429 answers with
// backoff up to MaxAttempts, and counts how it ended.
func (n *Notifier) send(ctx context.Context, it item) {
	body, err := Body(it.ev)
	if err != nil { // a Record always marshals; kept for safety
		n.failed.Add(1)
		n.metric.WithLabelValues("failed").Inc()
		n.opts.Logger.Error().Err(err).Str("job", it.ev.Record.Job).Msg("notification not sent: cannot encode it")
		return
	}
	body = n.opts.Secrets.RedactJSON(body)
	red := newRedactor(it.target)
	log := n.opts.Logger.With().
		Str("job", it.ev.Record.Job).
		Str("slot", it.ev.Record.Slot.UTC().Format(time.RFC3339)).
		Str("event", it.ev.Kind).
		Str("webhook_host", red.host).
		Logger()
	delay := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		res := n.post(ctx, it.target, body, red)
		if res.ok() {
			n.sent.Add(1)
			n.metric.WithLabelValues("sent").Inc()
			log.Debug().Int("status", res.status).Int("attempts", attempt).Msg("notification sent")
			return
		}
		retry := res.retryable() && attempt < n.opts.MaxAttempts && ctx.Err() == nil
		if !retry {
			n.failed.Add(1)
			n.metric.WithLabelValues("failed").Inc()
			res.log(log.Warn(), attempt).Msg("notification not sent: giving up")
			return
		}
		wait := delay
		if res.retryAfter > 0 {
			wait = min(res.retryAfter, n.opts.MaxBackoff)
		}
		res.log(log.Debug(), attempt).Int64("retry_in_ms", wait.Milliseconds()).Msg("notification not sent: retrying")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			n.failed.Add(1)
			n.metric.WithLabelValues("failed").Inc()
			res.log(log.Warn(), attempt).Msg("notification not sent: the notifier is stopping")
			return
		case <-t.C:
		}
		delay = min(2*delay, n.opts.MaxBackoff)
	}
}

// result is how one POST went.
type result struct {
	status     int    // the answer's status; 0 when there was none
	err        string // redacted transport error; "" when answered
	snippet    string // redacted start of a non-2xx answer's body
	retryAfter time.Duration
	permanent  bool // no attempt can do better (a bad URL)
}

func (r result) ok() bool { return !r.permanent && r.err == "" && r.status >= 200 && r.status < 300 }

// retryable: no answer, a 5xx, or 429 Too Many Requests. A 3xx (redirects
// are not followed) or another 4xx will not change by asking again.
func (r result) retryable() bool {
	return !r.permanent && (r.err != "" || r.status >= 500 || r.status == http.StatusTooManyRequests)
}

func (r result) log(e *zerolog.Event, attempt int) *zerolog.Event {
	e = e.Int("attempt", attempt)
	if r.err != "" {
		return e.Str("error", r.err)
	}
	e = e.Int("status", r.status)
	if r.snippet != "" {
		e = e.Str("response", r.snippet)
	}
	return e
}

// post sends body once, bounded by the target's timeout and by ctx.
func (n *Notifier) post(ctx context.Context, t Target, body []byte, red redactor) result {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, t.Webhook, bytes.NewReader(body))
	if err != nil {
		// A bad URL: no attempt will do better. url errors quote the
		// URL; say only what kind of problem it is.
		return result{err: "bad webhook URL (not shown: it may hold a secret)", permanent: true}
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redcron")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return result{err: red.error(err, rctx, timeout)}
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // read (some of) it so the connection can be reused
	if !r.ok() {
		r.snippet = red.snippet(data)
		if resp.StatusCode == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
				r.retryAfter = time.Duration(s) * time.Second
			}
		}
	}
	return r
}

// redactor scrubs one target's secrets (its URL and the parts of it that
// may be a credential, and its header values) from texts before they are
// logged.
type redactor struct {
	host    string   // what may be shown of the webhook
	secrets []string // longest first
}

const redacted = "[redacted]"

func newRedactor(t Target) redactor {
	r := redactor{host: jobs.WebhookHost(t.Webhook)}
	add := func(s string) {
		if len(s) >= 3 { // shorter strings would blank out ordinary words
			r.secrets = append(r.secrets, s)
		}
	}
	add(t.Webhook)
	if u, err := url.Parse(t.Webhook); err == nil {
		add(u.String())
		add(u.RequestURI())
		add(u.EscapedPath())
		add(u.Path)
		add(u.RawQuery)
		if p, ok := u.User.Password(); ok {
			add(p)
		}
		add(u.User.Username())
	}
	for _, v := range t.Headers {
		add(v)
		for _, f := range strings.Fields(v) { // "Bearer TOKEN": the token alone too
			add(f)
		}
	}
	// Longest first, so a secret is not half-replaced by one of its parts.
	slices.SortFunc(r.secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return r
}

func (r redactor) scrub(s string) string {
	for _, sec := range r.secrets {
		if sec != "/" {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// error describes a failed request without its URL: a *url.Error quotes
// the whole URL, so only its cause is kept, scrubbed too.
func (r redactor) error(err error, ctx context.Context, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return r.scrub(err.Error())
}

// snippet is the start of a refusing answer's body, on one line, scrubbed.
func (r redactor) snippet(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
	return r.scrub(cut(s, maxSnippet))
}
