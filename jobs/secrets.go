package jobs

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// MinSecretLen is the shortest value Secrets redacts: shorter ones would
// blank out ordinary words and numbers everywhere. Load warns about a
// ${VAR} whose value is shorter.
const MinSecretLen = 4

// Secret labels: what a redacted value is shown as when it did not come
// from a ${VAR} (which shows as "${VAR}").
const (
	// RedactedLabel stands for a password written in the file (in a Redis
	// URL, redis.password) or read from redis.password_file.
	RedactedLabel = "***"
)

// Secrets is the one owner of the values that must not leave the process
// (DESIGN promise 10): every value that came from a ${VAR} expansion (a
// non-empty ${VAR:-default} taken from the environment counts; a default
// written in the file does not), every Redis password (in a URL, in
// redis.password, from REDCRON_REDIS_PASSWORD or redis.password_file), and
// whatever the binary adds (the HTTP token). Every boundary where text
// leaves the process (logs, records, the API, notifications, validate)
// passes it through Redact, RedactJSON or a Writer, which show each value
// as its label: the "${VAR}" it came from, or RedactedLabel.
//
// Each value is also matched in the forms it takes in URLs (query, path
// and userinfo escaping), in Go's %q and in JSON strings. Values shorter
// than MinSecretLen are not redacted.
//
// A nil *Secrets redacts nothing. Its methods are safe for concurrent use;
// Add and Merge may be called while others redact (a SIGHUP reload).
type Secrets struct {
	mu     sync.Mutex        // serializes Add and Merge
	values map[string]string // value -> label; guarded by mu
	order  []string          // values in the order added; guarded by mu
	state  atomic.Pointer[secretState]
}

// secretState is an immutable snapshot of the redaction tables.
type secretState struct {
	rep   *strings.Replacer // every form, longest first
	forms []secretForm      // the same, longest first (for RedactTail)
}

type secretForm struct{ text, label string }

// NewSecrets returns an empty set.
func NewSecrets() *Secrets { return &Secrets{values: map[string]string{}} }

// Add makes value a secret shown as label (RedactedLabel when empty). A
// value shorter than MinSecretLen is ignored; a value already added keeps
// its first label.
func (s *Secrets) Add(value, label string) {
	if s == nil || len(value) < MinSecretLen {
		return
	}
	if label == "" {
		label = RedactedLabel
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[string]string{}
	}
	if _, ok := s.values[value]; ok {
		return
	}
	s.values[value] = label
	s.order = append(s.order, value)
	s.rebuild()
}

// AddURLPassword makes the password of a URL's userinfo (if any) a secret
// shown as label. It reads the userinfo textually, so it works on a URL
// that does not parse too.
func (s *Secrets) AddURLPassword(rawURL, label string) {
	if p, ok := urlPassword(rawURL); ok {
		s.Add(p, label)
		if u, err := url.PathUnescape(p); err == nil {
			s.Add(u, label)
		}
	}
}

// Merge adds every secret of o (with its label) to s.
func (s *Secrets) Merge(o *Secrets) {
	if s == nil || o == nil || s == o {
		return
	}
	o.mu.Lock()
	pairs := make([][2]string, 0, len(o.order))
	for _, v := range o.order {
		pairs = append(pairs, [2]string{v, o.values[v]})
	}
	o.mu.Unlock()
	for _, p := range pairs {
		s.Add(p[0], p[1])
	}
}

// Len is the number of secret values.
func (s *Secrets) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Contains reports whether text holds a secret in any of its forms.
func (s *Secrets) Contains(text string) bool {
	return s.Redact(text) != text
}

// rebuild recomputes the tables from s.values; mu is held.
func (s *Secrets) rebuild() {
	seen := map[string]bool{}
	var forms []secretForm
	for _, v := range s.order {
		label := s.values[v]
		for _, f := range secretForms(v) {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, secretForm{f, label})
			}
		}
	}
	// Longest first: a value is never half-replaced by a shorter one, and
	// an escaped form wins over a raw prefix of it.
	slices.SortStableFunc(forms, func(a, b secretForm) int { return cmp.Compare(len(b.text), len(a.text)) })
	args := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		args = append(args, f.text, f.label)
	}
	s.state.Store(&secretState{rep: strings.NewReplacer(args...), forms: forms})
}

// secretForms are the texts v may take where it leaves the process: as
// is, escaped in URLs, quoted by Go's %q, and escaped in JSON strings.
func secretForms(v string) []string {
	base := []string{v, url.QueryEscape(v), url.PathEscape(v), userinfoEscape(v)}
	if q := strconv.Quote(v); len(q) >= 2 {
		base = append(base, q[1:len(q)-1])
	}
	var out []string
	for _, f := range base {
		out = append(out, f, jsonEscape(f, false), jsonEscape(f, true))
	}
	return out
}

// userinfoEscape is v as net/url writes a password in a URL's userinfo.
func userinfoEscape(v string) string {
	s := url.UserPassword("x", v).String()
	return strings.TrimPrefix(s, "x:")
}

// jsonEscape is the inside of the JSON string of v, as encoding/json
// writes it (html: <, > and & escaped too) or as zerolog writes it.
func jsonEscape(v string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(v) // a string always encodes
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// Redact returns text with every secret shown as its label.
func (s *Secrets) Redact(text string) string {
	if s == nil || text == "" {
		return text
	}
	st := s.state.Load()
	if st == nil {
		return text
	}
	return st.rep.Replace(text)
}

// RedactTail is Redact for the tail of a longer text (an output tail,
// which starts with "…" when its start was cut): a secret cut at the
// start, whose last MinSecretLen bytes or more remain, is redacted too.
func (s *Secrets) RedactTail(text string) string {
	text = s.Redact(text)
	rest, cut := strings.CutPrefix(text, "…")
	if !cut || s == nil {
		return text
	}
	st := s.state.Load()
	if st == nil {
		return text
	}
	best, label := 0, ""
	for _, f := range st.forms {
		for k := len(f.text) - 1; k >= MinSecretLen && k > best; k-- {
			if strings.HasPrefix(rest, f.text[len(f.text)-k:]) {
				best, label = k, f.label
				break
			}
		}
	}
	if best == 0 {
		return text
	}
	return "…" + label + rest[best:]
}

// RedactJSON returns the JSON document b with every secret inside its
// strings (keys and values) shown as its label. Outside strings (numbers,
// true, false, null, punctuation) nothing changes, so the document stays
// valid JSON. b is returned as is when nothing was redacted.
func (s *Secrets) RedactJSON(b []byte) []byte {
	if s == nil || s.state.Load() == nil {
		return b
	}
	var out []byte // nil until something changes
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		start := i + 1
		j, escaped := start, false
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' {
				escaped = true
				j++
			}
			j++
		}
		j = min(j, len(b))
		if r, changed := s.redactJSONString(b[start:j], escaped); changed {
			out = append(out, b[last:start]...)
			out = append(out, r...)
			last = j
		}
		i = j
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// redactJSONString redacts the inside of one JSON string. Without escapes
// it is the string itself; with escapes it is decoded, redacted and
// encoded again, so that a replacement never splits an escape.
func (s *Secrets) redactJSONString(inner []byte, escaped bool) ([]byte, bool) {
	if !escaped {
		in := string(inner)
		r := s.Redact(in)
		return []byte(r), r != in
	}
	var v string
	if err := json.Unmarshal(append(append([]byte{'"'}, inner...), '"'), &v); err != nil || !utf8.ValidString(v) {
		// Not a valid JSON string (a cut line): redact the raw text, whose
		// JSON forms are among the secret's forms.
		in := string(inner)
		r := s.Redact(in)
		return []byte(r), r != in
	}
	r := s.Redact(v)
	if r == v {
		return inner, false
	}
	return []byte(jsonEscape(r, false)), true
}

// JSONWriter returns a writer that redacts each write as a JSON document
// (RedactJSON) before passing it to w: put it under a zerolog.Logger,
// which writes one JSON object per event. A write that is not a JSON
// object or array is redacted as text. It reports len(p) written when w
// took all of the redacted bytes. A nil Secrets returns w itself.
func (s *Secrets) JSONWriter(w io.Writer) io.Writer {
	if s == nil {
		return w
	}
	return redactWriter{s: s, w: w, json: true}
}

// Writer returns a writer that redacts each write as text (Redact) before
// passing it to w; a secret split across two writes is not seen. A nil
// Secrets returns w itself.
func (s *Secrets) Writer(w io.Writer) io.Writer {
	if s == nil {
		return w
	}
	return redactWriter{s: s, w: w}
}

type redactWriter struct {
	s    *Secrets
	w    io.Writer
	json bool
}

func (r redactWriter) Write(p []byte) (int, error) {
	var out []byte
	if t := bytes.TrimLeft(p, " \t\r\n"); r.json && len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		out = r.s.RedactJSON(p)
	} else {
		out = []byte(r.s.Redact(string(p)))
	}
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// urlPassword is the (still escaped) password of rawURL's userinfo, read
// textually: "scheme://user:PASSWORD@host...".
func urlPassword(rawURL string) (string, bool) {
	ui, ok := urlUserinfo(rawURL)
	if !ok {
		return "", false
	}
	_, p, ok := strings.Cut(ui, ":")
	return p, ok && p != ""
}

// urlUserinfo is the userinfo of rawURL ("user:password"), read
// textually: between "://" and the last "@" before the path.
func urlUserinfo(rawURL string) (string, bool) {
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return "", false
	}
	return rest[:at], true
}

// RedactURL returns rawURL with its userinfo (user and password: some
// write a password where the user goes) shown as RedactedLabel, for
// messages about a URL: it works textually, so also on a URL that does
// not parse.
func RedactURL(rawURL string) string {
	ui, ok := urlUserinfo(rawURL)
	if !ok {
		return rawURL
	}
	scheme, rest, _ := strings.Cut(rawURL, "://")
	return scheme + "://" + RedactedLabel + rest[len(ui):]
}

// ParseSecretURL is url.Parse whose error never shows the password of the
// URL's userinfo: url.Parse's errors quote the whole URL, and an escape
// error quotes part of the password. The error names the URL with its
// password shown as RedactedLabel.
func ParseSecretURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err == nil {
		return u, nil
	}
	shown := RedactURL(rawURL)
	if shown != rawURL {
		if _, err2 := url.Parse(shown); err2 == nil {
			return nil, fmt.Errorf("%w: %s: the userinfo does not parse (escape reserved characters in the user and password with %%XX)", ErrBadURL, shown)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if p, ok := urlPassword(rawURL); ok {
		msg = strings.ReplaceAll(msg, p, RedactedLabel)
	}
	return nil, fmt.Errorf("%w: %s: %s", ErrBadURL, shown, msg)
}

// readSmallFile reads a regular file of at most limit bytes (not a FIFO or
// a device, which could block or never end).
func readSmallFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
