// Package prometheus_test checks deploy/prometheus/alerts.yml: the file is
// a strict Prometheus rules file, every alert is complete, the expected
// alerts exist, their annotations are valid templates, and every expression
// is well formed PromQL over the metrics redcron exports.
//
// The PromQL check is this file's own (a lexer and a few rules), not
// Prometheus's parser: github.com/prometheus/prometheus/promql/parser would
// add some 60 modules to go.sum for one test. It catches what goes wrong
// when editing rules by hand: unbalanced brackets, an unknown function, a
// misspelt metric or label, an outcome or reason that does not exist, a bad
// duration. `promtool check rules alerts.yml` is the full check, run by hand
// (promtool is not installed where the tests run).
package prometheus_test

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"gopkg.in/yaml.v3"
)

// ruleFile mirrors Prometheus's rule file format (rulefmt), strictly.
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name        string            `yaml:"name"`
	Interval    string            `yaml:"interval"`
	QueryOffset string            `yaml:"query_offset"`
	Limit       int               `yaml:"limit"`
	Labels      map[string]string `yaml:"labels"`
	Rules       []rule            `yaml:"rules"`
}

type rule struct {
	Record        string            `yaml:"record"`
	Alert         string            `yaml:"alert"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

// wantAlerts are the alerts the file must hold.
var wantAlerts = []string{
	"RedcronJobFailed",
	"RedcronJobNotSucceeding",
	"RedcronSlotsSkipped",
	"RedcronConfigDrift",
	"RedcronTooFewReplicas",
	"RedcronDown",
	"RedcronClockOff",
	"RedcronConfigReloadFailed",
}

// Label values of the counters, as the replicas initialise them.
var (
	outcomes = []string{"ok", "error", "timeout", "panic", "lease_lost", "shutdown", "canceled"}
	reasons  = []string{"paused", "overlap", "outage", "late", "aborted", "clock"}
)

// metrics are the series redcron exports (and the one recording rule the
// file documents), with the labels each carries besides the ones every
// scraped series has (targetLabels).
var metrics = map[string][]string{
	"redcron_runs_total":                         {"job", "outcome"},
	"redcron_skipped_slots_total":                {"job", "reason"},
	"redcron_claim_errors_total":                 {"job"},
	"redcron_job_last_success_timestamp_seconds": {"job"},
	"redcron_run_duration_seconds_bucket":        {"job", "le"},
	"redcron_run_duration_seconds_sum":           {"job"},
	"redcron_run_duration_seconds_count":         {"job"},
	"redcron_running":                            {"job"},
	"redcron_fire_lag_seconds_bucket":            {"job", "le"},
	"redcron_fire_lag_seconds_sum":               {"job"},
	"redcron_fire_lag_seconds_count":             {"job"},
	"redcron_replicas":                           nil,
	"redcron_config_drift":                       {"job"},
	"redcron_clock_offset_seconds":               nil,
	"redcron_config_reload_errors_total":         nil,
	// Recorded by operators for RedcronJobNotSucceeding (see the file).
	"redcron:job_interval_seconds": {"job"},
}

// targetLabels are on every scraped series: the target's, and the
// metric's own job renamed when the scrape config does not honour it.
var targetLabels = []string{"job", "instance", "exported_job"}

// labelValues are the values a matcher may test a label against with = or !=.
var labelValues = map[string][]string{"outcome": outcomes, "reason": reasons}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	data, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f ruleFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return f
}

// TestAlertRules: the rules file is complete and every expression and
// template is well formed.
func TestAlertRules(t *testing.T) {
	f := loadRules(t)
	if len(f.Groups) == 0 {
		t.Fatal("got no groups, want at least one")
	}
	seen := map[string]bool{}
	groups := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group %q: got an empty or repeated name, want a unique one", g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			t.Errorf("group %s: got no rules", g.Name)
		}
		for i, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = fmt.Sprintf("%s[%d]", g.Name, i)
			}
			t.Run(name, func(t *testing.T) {
				checkRule(t, r)
				if err := checkPromQL(r.Expr); err != nil {
					t.Errorf("expr: %v\n%s", err, r.Expr)
				}
			})
			if r.Alert != "" {
				if seen[r.Alert] {
					t.Errorf("alert %s: declared twice", r.Alert)
				}
				seen[r.Alert] = true
			}
		}
	}
	for _, a := range wantAlerts {
		if !seen[a] {
			t.Errorf("got no alert %s, want it", a)
		}
	}
}

var (
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	alertName    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	severities   = []string{"info", "warning", "critical"}
)

func checkRule(t *testing.T, r rule) {
	t.Helper()
	switch {
	case r.Alert == "" && r.Record == "":
		t.Fatal("got neither alert nor record, want one")
	case r.Alert != "" && r.Record != "":
		t.Fatal("got both alert and record, want one")
	case r.Record != "":
		if r.For != "" || r.KeepFiringFor != "" || r.Annotations != nil {
			t.Error("a recording rule takes no for, keep_firing_for or annotations")
		}
		if strings.TrimSpace(r.Expr) == "" {
			t.Error("got no expr")
		}
		return
	}
	if !alertName.MatchString(r.Alert) {
		t.Errorf("alert: got %q, want a valid name", r.Alert)
	}
	if strings.TrimSpace(r.Expr) == "" {
		t.Error("got no expr")
	}
	for name, d := range map[string]string{"for": r.For, "keep_firing_for": r.KeepFiringFor} {
		if d != "" && !promDuration.MatchString(d) {
			t.Errorf("%s: got %q, want a duration like 5m", name, d)
		}
	}
	if sev := r.Labels["severity"]; !slices.Contains(severities, sev) {
		t.Errorf("labels.severity: got %q, want one of %v", sev, severities)
	}
	if r.Annotations["summary"] == "" {
		t.Error("annotations.summary: got none, want one")
	}
	if r.Annotations["description"] == "" {
		t.Error("annotations.description: got none, want one")
	}
	for k, v := range r.Annotations {
		out, err := expandTemplate(v)
		switch {
		case err != nil:
			t.Errorf("annotations.%s: %v", k, err)
		case strings.Contains(out, "<no value>"):
			t.Errorf("annotations.%s: got %q, want every field filled", k, out)
		}
	}
}

// expandTemplate renders an annotation as Prometheus does (text/template,
// with $labels and $value defined first), with stand-ins for the
// functions Prometheus adds.
func expandTemplate(text string) (string, error) {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	funcs := template.FuncMap{
		"humanize":           func(v float64) string { return fmt.Sprintf("%.4g", v) },
		"humanize1024":       func(v float64) string { return fmt.Sprintf("%.4g", v) },
		"humanizeDuration":   func(v float64) string { return fmt.Sprintf("%.4gs", v) },
		"humanizePercentage": func(v float64) string { return fmt.Sprintf("%.4g%%", v*100) },
		"humanizeTimestamp":  func(v float64) string { return fmt.Sprintf("%.0f", v) },
		"title":              strings.ToTitle,
		"toUpper":            strings.ToUpper,
		"toLower":            strings.ToLower,
	}
	tmpl, err := template.New("annotation").Option("missingkey=zero").Funcs(funcs).Parse(defs + text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = tmpl.Execute(&b, struct {
		Labels         map[string]string
		ExternalLabels map[string]string
		ExternalURL    string
		Value          float64
	}{
		Labels: map[string]string{"job": "backup", "instance": "10.0.0.1:9090", "reason": "overlap", "severity": "warning"},
		Value:  3,
	})
	return b.String(), err
}

// TestCheckPromQL: the expression check accepts good PromQL and refuses
// what it is there to catch.
func TestCheckPromQL(t *testing.T) {
	tests := []struct {
		expr, want string // want: "" for accepted, else a part of the error
	}{
		{`sum by (job) (increase(redcron_runs_total{outcome!="ok"}[15m])) > 0`, ""},
		{`max(redcron_replicas) < 3`, ""},
		{`abs(redcron_clock_offset_seconds) > 1`, ""},
		{`histogram_quantile(0.99, sum by (job, le) (rate(redcron_run_duration_seconds_bucket[5m])))`, ""},
		{`time() - max by (job) (redcron_job_last_success_timestamp_seconds > 0) > on (job) group_left () 2 * 3600`, ""},
		{`label_replace(redcron_config_drift, "job", "$1", "exported_job", "(.+)") == 1`, ""},
		{`sum without (instance) (redcron_running{job=~"back.*"})`, ""},
		{`sum(increase(redcron_runs_total{outcome!="ok"}[15m]) > 0`, "unbalanced"},
		{`sum(increase(redcron_runs_total[15m]])`, "does not match"},
		{`redcron_runs_total{outcome="ok"`, "unbalanced"},
		{`increase(redcron_run_total[15m]) > 0`, `unknown metric "redcron_run_total"`},
		{`increase(redcron_runs_total{outcome!="okay"}[15m]) > 0`, `outcome="okay"`},
		{`increase(redcron_skipped_slots_total{reason!="pause"}[15m]) > 0`, `reason="pause"`},
		{`increase(redcron_skipped_slots_total{outcome!="ok"}[15m]) > 0`, `label "outcome"`},
		{`increase(redcron_runs_total[15 m]) > 0`, "range"},
		{`increase(redcron_runs_total[15x]) > 0`, "duration"},
		{`increse(redcron_runs_total[15m]) > 0`, `unknown function "increse"`},
		{`sum by (jobb) (redcron_running)`, `unknown label "jobb"`},
		{`redcron_runs_total{outcome!="ok}`, "unterminated string"},
		{`redcron_replicas ; 3`, "unexpected character"},
		{`max(redcron_replicas offset 5m) < 3`, ""},
		{`max(redcron_replicas) 5m`, "outside a range"},
		{``, "empty"},
	}
	for _, tt := range tests {
		err := checkPromQL(tt.expr)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: got %v, want it accepted", tt.expr, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error with %q", tt.expr, err, tt.want)
		}
	}
}

// PromQL vocabulary.
var (
	aggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
		"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
	functions = []string{"abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
		"day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor",
		"histogram_quantile", "holt_winters", "double_exponential_smoothing", "hour", "idelta", "increase", "irate",
		"label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
		"round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
		"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "quantile_over_time",
		"stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time"}
	// grouping keywords take a parenthesised list of label names.
	grouping  = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	operators = []string{"and", "or", "unless", "bool", "offset"}
	// groupLabels are the labels the rules may group or match on.
	groupLabels = []string{"job", "instance", "outcome", "reason", "le", "exported_job"}
)

type token struct {
	kind string // "ident", "number", "duration", "string", or the punctuation itself
	text string
	pos  int
}

var punctuation = []string{"==", "!=", ">=", "<=", "=~", "!~", "(", ")", "[", "]", "{", "}", ",", "+", "-", "*", "/", "%", "^", ">", "<", "=", ":"}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

// lex splits a PromQL expression into tokens.
func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, token{"string", s[i+1 : j], i})
			i = j + 1
		case '0' <= c && c <= '9' || (c == '.' && i+1 < len(s) && '0' <= s[i+1] && s[i+1] <= '9'):
			j := i
			for j < len(s) && (('0' <= s[j] && s[j] <= '9') || s[j] == '.') {
				j++
			}
			kind := "number"
			if j < len(s) && isIdentStart(s[j]) && s[j] != ':' {
				for j < len(s) && isIdentChar(s[j]) {
					j++
				}
				kind = "duration"
			}
			out = append(out, token{kind, s[i:j], i})
			i = j
		case isIdentStart(c) && c != ':':
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			out = append(out, token{"ident", s[i:j], i})
			i = j
		default:
			p := ""
			for _, q := range punctuation {
				if strings.HasPrefix(s[i:], q) && len(q) > len(p) {
					p = q
				}
			}
			if p == "" {
				return nil, fmt.Errorf("unexpected character %q at %d", c, i)
			}
			out = append(out, token{p, p, i})
			i += len(p)
		}
	}
	return out, nil
}

// checkPromQL checks expr's brackets, names, matchers and durations.
func checkPromQL(expr string) error {
	if strings.TrimSpace(expr) == "" {
		return fmt.Errorf("empty expression")
	}
	toks, err := lex(expr)
	if err != nil {
		return err
	}
	// Brackets balance and nest.
	var stack []token
	pairs := map[string]string{")": "(", "]": "[", "}": "{"}
	for _, tk := range toks {
		switch tk.kind {
		case "(", "[", "{":
			stack = append(stack, tk)
		case ")", "]", "}":
			if len(stack) == 0 {
				return fmt.Errorf("unbalanced %q at %d", tk.kind, tk.pos)
			}
			if open := stack[len(stack)-1]; open.kind != pairs[tk.kind] {
				return fmt.Errorf("%q at %d does not match %q at %d", tk.kind, tk.pos, open.kind, open.pos)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unbalanced %q at %d", stack[len(stack)-1].kind, stack[len(stack)-1].pos)
	}
	// Names, matchers and ranges.
	for i := 0; i < len(toks); i++ {
		tk := toks[i]
		next := func(k int) token {
			if i+k < len(toks) {
				return toks[i+k]
			}
			return token{}
		}
		switch {
		case tk.kind == "[":
			if next(1).kind != "duration" || next(2).kind != "]" {
				return fmt.Errorf("range at %d: want [duration] like [15m]", tk.pos)
			}
			if !promDuration.MatchString(next(1).text) {
				return fmt.Errorf("range at %d: bad duration %q", tk.pos, next(1).text)
			}
			i += 2
		case tk.kind == "duration":
			return fmt.Errorf("duration %q at %d outside a range", tk.text, tk.pos)
		case tk.kind != "ident":
		case slices.Contains(grouping, tk.text):
			if next(1).kind != "(" {
				if tk.text == "group_left" || tk.text == "group_right" {
					continue // the label list is optional
				}
				return fmt.Errorf("%s at %d: want a label list", tk.text, tk.pos)
			}
			j := i + 2
			for ; j < len(toks) && toks[j].kind != ")"; j++ {
				switch {
				case toks[j].kind == ",":
				case toks[j].kind == "ident" && slices.Contains(groupLabels, toks[j].text):
				case toks[j].kind == "ident":
					return fmt.Errorf("%s at %d: unknown label %q", tk.text, tk.pos, toks[j].text)
				default:
					return fmt.Errorf("%s at %d: want label names, got %q", tk.text, tk.pos, toks[j].text)
				}
			}
			i = j
		case tk.text == "offset" && next(1).kind == "duration":
			if !promDuration.MatchString(next(1).text) {
				return fmt.Errorf("offset at %d: bad duration %q", tk.pos, next(1).text)
			}
			i++
		case slices.Contains(operators, tk.text):
		case slices.Contains(aggregations, tk.text) && (next(1).text == "by" || next(1).text == "without"):
		case next(1).kind == "(":
			if !slices.Contains(aggregations, tk.text) && !slices.Contains(functions, tk.text) {
				return fmt.Errorf("unknown function %q at %d", tk.text, tk.pos)
			}
		default:
			labels, ok := metrics[tk.text]
			if !ok {
				return fmt.Errorf("unknown metric %q at %d", tk.text, tk.pos)
			}
			if next(1).kind == "{" {
				end, err := checkMatchers(toks, i+1, tk.text, labels)
				if err != nil {
					return err
				}
				i = end
			}
		}
	}
	return nil
}

// checkMatchers checks the {label op "value", ...} of metric starting at
// toks[open]; it returns the index of the closing brace.
func checkMatchers(toks []token, open int, metric string, labels []string) (int, error) {
	i := open + 1
	for {
		if toks[i].kind == "}" {
			return i, nil
		}
		if i+2 >= len(toks) || toks[i].kind != "ident" || toks[i+2].kind != "string" {
			return 0, fmt.Errorf("%s: matcher at %d: want label op \"value\"", metric, toks[i].pos)
		}
		name, op, value := toks[i].text, toks[i+1].kind, toks[i+2].text
		if !slices.Contains(labels, name) && !slices.Contains(targetLabels, name) {
			return 0, fmt.Errorf("%s has no label %q", metric, name)
		}
		switch op {
		case "=", "!=":
			if known, ok := labelValues[name]; ok && !slices.Contains(known, value) {
				return 0, fmt.Errorf("%s: no series has %s=%q (values: %v)", metric, name, value, known)
			}
		case "=~", "!~":
			if _, err := regexp.Compile("^(?:" + value + ")$"); err != nil {
				return 0, fmt.Errorf("%s: matcher %s: %v", metric, name, err)
			}
		default:
			return 0, fmt.Errorf("%s: matcher %s: bad operator %q", metric, name, op)
		}
		i += 3
		if toks[i].kind == "," {
			i++
		}
	}
}
