package jobs

import (
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The http: block of HTTP jobs, and the check of an HTTP job whole. The
// request is sent by http.go.

// httpKeys are the keys of the http: block, in the order messages show them.
var httpKeys = keyTable[*HTTPSpec]{
	{"url", decodeHTTPURL},
	{"method", decodeHTTPMethod},
	{"headers", decodeHTTPHeaders},
	{"body", func(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) { h.Body, _ = d.str(v, a) }},
	{"expect", decodeHTTPExpect},
	{"timeout", func(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) {
		if t, ok := d.duration(v, a); ok {
			if t <= 0 {
				d.fail(v, a, nil, "must be positive (HTTP jobs are always bounded), got %s", t)
			} else {
				h.Timeout = t
			}
		}
	}},
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// httpBlock decodes an http: block into h, key by key over what h holds.
func (d *decoder) httpBlock(n *yaml.Node, a at, h *HTTPSpec) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping %s, got %s", httpKeys.shape(), describe(n))
		return
	}
	decodeBlock(d, n, a, httpKeys, h)
}

func decodeHTTPURL(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) {
	s, ok := d.str(v, a)
	if !ok {
		return
	}
	u, err := url.Parse(s)
	switch {
	case s == "":
		d.fail(v, a, nil, "empty URL")
	case err != nil:
		d.fail(v, a, nil, "bad URL: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		d.fail(v, a, nil, "want an absolute http:// or https:// URL, got %q", s)
	case u.Host == "":
		d.fail(v, a, nil, "URL %q has no host", s)
	default:
		h.URL = s
	}
}

func decodeHTTPMethod(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) {
	if m, ok := d.str(v, a); ok {
		if up := strings.ToUpper(m); slices.Contains(httpMethods, up) {
			h.Method = up
		} else {
			d.fail(v, a, nil, "bad method %q: want one of %s", m, strings.Join(httpMethods, ", "))
		}
	}
}

// decodeHTTPHeaders merges the headers: mapping over h's entry by entry.
func decodeHTTPHeaders(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) {
	m, ok := d.strMap(v, a, h.Headers)
	if !ok {
		return
	}
	for name, val := range m {
		switch {
		case !validHeaderName(name):
			d.fail(v, a, nil, "bad header name %q", name)
		case strings.HasPrefix(strings.ToLower(name), "x-redcron-"):
			d.fail(v, a, nil, "%s: X-Redcron-* headers are set by redcron", name)
		case strings.ContainsAny(val, "\r\n"):
			d.fail(v, a, nil, "header %s: value holds a line break", name)
		}
	}
	h.Headers = m
}

func decodeHTTPExpect(d *decoder, h *HTTPSpec, _, v *yaml.Node, a at) {
	dv := deref(v)
	if dv.Kind != yaml.SequenceNode {
		d.fail(v, a, nil, "want a list of status codes like [200, 204], got %s", describe(v))
		return
	}
	codes := make([]int, 0, len(dv.Content))
	for i, c := range dv.Content {
		ca := a.index(i)
		if x, ok := d.integer(c, ca); ok {
			if x < 100 || x > 599 {
				d.fail(c, ca, nil, "status %d is not in 100..599", x)
			}
			codes = append(codes, x)
		}
	}
	h.Expect = codes
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// finishHTTP checks an HTTP job whole and sets j.HTTP. before is the number
// of problems found before the job.
func (d *decoder) finishHTTP(s *jobDraft, j *Job, a at, before int) {
	h := s.http
	if h.URL == "" && len(d.probs) == before {
		d.fail(s.nodes.get(KindHTTP), a.sub("http.url"), nil, "missing: an absolute http:// or https:// URL")
	}
	j.HTTP = &h
}
