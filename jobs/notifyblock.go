package jobs

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The notify: block of a job (or of defaults:): which events are posted to
// a webhook. The notifications are sent by scheduler/notify.
//
// The webhook URL and the header values may be secrets (a Slack webhook's
// path is its credential; a header may carry a token from ${VAR}): no
// message here quotes them. Header names and event names are quoted.

// DefaultNotifyTimeout bounds each notification POST when notify.timeout
// is not set.
const DefaultNotifyTimeout = 5 * time.Second

// notifyEvents are the values `on` accepts, in the order messages list them.
var notifyEvents = []string{NotifyFailure, NotifyRecovery, NotifySkipped}

// notifyDraft is a notify: block being decoded: the block and whether its
// webhook was given (however badly), so a bad one is not also "missing".
type notifyDraft struct {
	n          Notify
	webhookSet bool
}

// notifyKeys are the keys of the notify: block, in the order messages
// show them.
var notifyKeys = keyTable[*notifyDraft]{
	{"on", decodeNotifyOn},
	{"webhook", decodeNotifyWebhook},
	{"headers", decodeNotifyHeaders},
	{"timeout", func(d *decoder, nd *notifyDraft, _, v *yaml.Node, a at) {
		if t, ok := d.duration(v, a); ok {
			if t <= 0 {
				d.fail(v, a, nil, "must be positive (notifications are always bounded), got %s", t)
			} else {
				nd.n.Timeout = t
			}
		}
	}},
}

// decodeNotify decodes a notify: block over the one in effect (the
// defaults:' block for a job, else the built-in defaults), key by key;
// headers merge entry by entry. The block in effect is copied, never
// changed: the defaults' draft is shared by every job.
func decodeNotify(d *decoder, s *jobDraft, _, v *yaml.Node, a at) {
	if deref(v).Kind != yaml.MappingNode {
		d.fail(v, a, nil, "want a mapping %s, got %s", notifyKeys.shape(), describe(v))
		return
	}
	nd := notifyDraft{n: Notify{On: []string{NotifyFailure}, Timeout: DefaultNotifyTimeout}}
	if prev := s.job.Notify; prev != nil {
		nd.n = *prev
		nd.n.On = slices.Clone(prev.On)
		nd.n.Headers = maps.Clone(prev.Headers)
		nd.webhookSet = prev.Webhook != ""
	}
	decodeBlock(d, v, a, notifyKeys, &nd)
	if !nd.webhookSet && len(nd.n.On) > 0 {
		d.fail(v, a.sub("webhook"), nil, "missing: an absolute http:// or https:// URL to post %s notifications to (or on: [] for none)", joinWords(nd.n.On, "and"))
	}
	s.job.Notify = &nd.n
}

func decodeNotifyOn(d *decoder, nd *notifyDraft, _, v *yaml.Node, a at) {
	dv := deref(v)
	if dv.Kind != yaml.SequenceNode {
		d.fail(v, a, nil, "want a list of events among %s, like [failure, recovery], got %s", joinWords(notifyEvents, "and"), describe(v))
		return
	}
	on := make([]string, 0, len(dv.Content))
	ok := true
	for i, c := range dv.Content {
		ca := a.index(i)
		ev, good := d.str(c, ca)
		switch {
		case !good:
			ok = false
		case !slices.Contains(notifyEvents, ev):
			d.fail(c, ca, nil, "unknown event %q: want %s", ev, joinWords(notifyEvents, "or"))
			ok = false
		case slices.Contains(on, ev):
			d.fail(c, ca, nil, "event %q is listed twice", ev)
			ok = false
		default:
			on = append(on, ev)
		}
	}
	if ok {
		nd.n.On = on
	}
}

// decodeNotifyWebhook checks the webhook URL without quoting it: the URL
// itself may be the secret.
func decodeNotifyWebhook(d *decoder, nd *notifyDraft, _, v *yaml.Node, a at) {
	nd.webhookSet = true
	s, ok := d.str(v, a)
	if !ok {
		return
	}
	u, err := url.Parse(s)
	switch {
	case s == "":
		d.fail(v, a, nil, "empty URL")
	case err != nil:
		d.fail(v, a, nil, "bad URL (not shown: it may hold a secret)")
	case u.Scheme != "http" && u.Scheme != "https":
		d.fail(v, a, nil, "want an absolute http:// or https:// URL (not shown: it may hold a secret)")
	case u.Host == "":
		d.fail(v, a, nil, "the URL has no host (not shown: it may hold a secret)")
	default:
		nd.n.Webhook = s
	}
}

// decodeNotifyHeaders merges the headers: mapping over the block's entry by
// entry. Values are never quoted in messages.
func decodeNotifyHeaders(d *decoder, nd *notifyDraft, _, v *yaml.Node, a at) {
	m, ok := d.strMap(v, a, nd.n.Headers)
	if !ok {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		switch val := m[name]; {
		case !validHeaderName(name):
			d.fail(v, a, nil, "bad header name %q", name)
		case strings.EqualFold(name, "Content-Type"), strings.EqualFold(name, "Content-Length"):
			d.fail(v, a, nil, "%s: set by redcron (the body is JSON)", name)
		case strings.ContainsAny(val, "\r\n"):
			d.fail(v, a, nil, "header %s: value holds a line break", name)
		}
	}
	nd.n.Headers = m
}

// Wants reports whether the block asks for notifications of event kind
// (NotifyFailure, NotifyRecovery or NotifySkipped). A nil Notify wants none.
func (n *Notify) Wants(kind string) bool {
	return n != nil && n.Webhook != "" && slices.Contains(n.On, kind)
}

// String describes the block without its secrets: the events, the
// webhook's host (not its path or query), the header names (not their
// values) and the timeout.
func (n *Notify) String() string {
	if n == nil {
		return "notify: none"
	}
	var b strings.Builder
	b.WriteString("notify on [" + strings.Join(n.On, ", ") + "] to ")
	b.WriteString(WebhookHost(n.Webhook))
	if len(n.Headers) > 0 {
		b.WriteString(" with headers " + strings.Join(slices.Sorted(maps.Keys(n.Headers)), ", "))
	}
	b.WriteString(", timeout " + n.Timeout.String())
	return b.String()
}

// WebhookHost returns the host of a webhook URL (with its port, without
// user info, path or query), the part of it that logs may show; "(none)"
// for an empty URL and "(bad URL)" for one that does not parse.
func WebhookHost(raw string) string {
	if raw == "" {
		return "(none)"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(bad URL)"
	}
	return u.Host
}
