package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlTree is yaml.v3's reading of data as parse's fallback does it: the
// one document, or an error.
func yamlTree(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("a second document (%v)", err)
	}
	return &doc, nil
}

// sameTree returns where got and want differ, ignoring comments (which
// fastParse never reads), or "".
func sameTree(path string, got, want *yaml.Node) string {
	switch {
	case got == nil || want == nil:
		if got != want {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
		return ""
	case got.Kind != want.Kind || got.Style != want.Style || got.Tag != want.Tag || got.Value != want.Value ||
		got.Anchor != want.Anchor || got.Alias != want.Alias || got.Line != want.Line || got.Column != want.Column:
		return fmt.Sprintf("%s: got {kind %d style %d tag %q value %q at %d:%d}, want {kind %d style %d tag %q value %q anchor %q at %d:%d}",
			path, got.Kind, got.Style, got.Tag, got.Value, got.Line, got.Column,
			want.Kind, want.Style, want.Tag, want.Value, want.Anchor, want.Line, want.Column)
	case len(got.Content) != len(want.Content):
		return fmt.Sprintf("%s: got %d children, want %d", path, len(got.Content), len(want.Content))
	}
	for i := range got.Content {
		if d := sameTree(fmt.Sprintf("%s/%d", path, i), got.Content[i], want.Content[i]); d != "" {
			return d
		}
	}
	return ""
}

// checkFast fails t if fastParse reads data differently from yaml.v3, and
// returns whether fastParse read it.
func checkFast(t *testing.T, data []byte) bool {
	t.Helper()
	got, ok := fastParse(data)
	if !ok {
		return false
	}
	want, err := yamlTree(data)
	if err != nil {
		t.Fatalf("fastParse read %q, yaml.v3 refused it: %v", data, err)
	}
	if d := sameTree("doc", got, want); d != "" {
		t.Fatalf("fastParse and yaml.v3 differ on %q: %s", data, d)
	}
	return true
}

var fastYAMLCases = []struct {
	name, in string
	fast     bool // whether fastParse reads it (else yaml.v3 does)
}{
	{"flow job", "jobs:\n  a: {schedule: '@every 5s', func: test.echo, args: {message: hi}}\n", true},
	{"generated", "defaults:\n  catchup_window: 1m\n  history: {keep: 100}\njobs:\n  j000000: {schedule: \"0 * * * * *\", func: benchjob}\n  j000001: {schedule: \"0 0 * * * *\", func: benchjob}\n", true},
	{"block job", "redis:\n  url: redis://127.0.0.1:6379/0\n  prefix: rc\njobs:\n  a:\n    schedule: \"*/5 * * * * *\"\n    command: [sh, -c, 'echo it''s $X']\n    timeout: 10s\n", true},
	{"sequence in the key's column", "jobs:\n  a:\n    command:\n    - sh\n    - -c\n    env: {A: \"1\"}\n", true},
	{"indented sequence", "a:\n  - 1\n  - x: 2\n    y: [3, 4]\n  -\n    z: true\nb: ~\n", true},
	{"compact mapping, wide dash", "a:\n-   x: 1\n    y: 2\n- q\n", true},
	{"typed scalars", "a: {i: 12, f: 1.5, b: true, n: null, t: 2001-12-14, h: 0x1F, s: 'true', d: \"12\"}\n", true},
	{"no final newline", "a: b", true},
	{"blank lines, trailing spaces", "\n\na: b   \n\n  \nc:   d\n\n", true},
	{"colon and hash in plain", "a: http://x:80/p#frag\nb: x:y\n", true},
	{"flow in flow", "a: {b: [1, [2, 3], {c: d}], e: {}, f: []}\n", true},
	{"quoted keys", "'a b': 1\n\"c\": 2\n", true},
	{"root indented", "  a: 1\n  b: 2\n", true},
	{"nested deeper", "a:\n    b:\n        c: 1\n    d: 2\ne: 3\n", true},
	{"flow with spaces", "a: {  b:   c ,d: e  }\n", true},
	{"plain with inner spaces", "a: b c d\n", true},

	{"comment line", "# jobs\na: b\n", false},
	{"line comment", "a: b # c\n", false},
	{"anchor", "a: &x {b: c}\nd: *x\n", false},
	{"block scalar", "a: |\n  text\n", false},
	{"escape", "a: \"x\\ty\"\n", false},
	{"tab", "a:\tb\n", false},
	{"crlf", "a: b\r\n", false},
	{"non-ASCII", "a: caf\u00e9\n", false},
	{"document marker", "---\na: b\n", false},
	{"second document", "a: b\n---\nc: d\n", false},
	{"document end", "a: b\n...\n", false},
	{"empty value", "a:\nb: c\n", false},
	{"empty value at the end", "a: b\nc:\n", false},
	{"multi-line plain", "a: b\n  c\n", false},
	{"multi-line flow", "a: {b: c,\n  d: e}\n", false},
	{"trailing comma", "a: [1, 2,]\n", false},
	{"negative number, option", "a: -5\nb: [-c, -x]\n", true},
	{"dash alone", "a: [-]\n", false},
	{"nested sequence entry", "a:\n- - 1\n", false},
	{"merge key", "<<: {a: b}\n", false},
	{"tag", "a: !!str 5\n", false},
	{"pair in a flow sequence", "a: [b: c]\n", false},
	{"colon in a flow plain", "a: {u: http://x}\n", false},
	{"bad indent", "a: 1\n b: 2\n", false},
	{"syntax error", "a: b: c\n", false},
	{"unclosed quote", "a: 'b\n", false},
	{"unclosed flow", "a: {b: c\n", false},
	{"scalar root", "hello\n", false},
	{"sequence root", "- a\n- b\n", false},
	{"empty", "", false},
	{"only blank lines", "\n  \n", false},
	{"long key", strings.Repeat("k", 1100) + ": v\n", false},
	{"complex key", "? a\n: b\n", false},
	{"deep nesting", strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n", false},
}

func TestFastYAML(t *testing.T) {
	for _, c := range fastYAMLCases {
		t.Run(c.name, func(t *testing.T) {
			if got := checkFast(t, []byte(c.in)); got != c.fast {
				t.Errorf("fastParse read it: got %v, want %v", got, c.fast)
			}
		})
	}
}

// TestFastYAMLExample checks that fastParse reads the example jobs.yaml,
// without its comments (with them yaml.v3 does), as yaml.v3 does.
func TestFastYAMLExample(t *testing.T) {
	data, err := os.ReadFile("../jobs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if checkFast(t, data) {
		t.Fatal("fastParse read a file with comments")
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if i := strings.Index(l, "#"); i >= 0 && (i == 0 || l[i-1] == ' ') {
			l = strings.TrimRight(l[:i], " ")
		}
		lines = append(lines, l)
	}
	if stripped := strings.Join(lines, "\n"); !checkFast(t, []byte(stripped)) {
		t.Fatalf("fastParse did not read the example without comments:\n%s", stripped)
	}
}

// TestFastYAMLRandom holds fastParse to yaml.v3 on random documents built
// from the subset's pieces and from some just outside it.
func TestFastYAMLRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	read := 0
	const docs = 3000
	for i := 0; i < docs; i++ {
		var b strings.Builder
		randomBlock(rng, &b, 0, 0)
		if checkFast(t, []byte(b.String())) {
			read++
		}
	}
	// Most documents are in the subset, so that the comparison has teeth.
	if read < docs/3 {
		t.Fatalf("fastParse read %d of %d random documents, want at least a third", read, docs)
	}
}

var (
	// randomScalars are values fastParse reads; randomOutside, values it
	// leaves to yaml.v3 or that yaml.v3 refuses.
	randomScalars = []string{"a", "b c", "12", "-3", "-c", "1.5", "true", "no", "null", "~", "False", "NULL", "Null", "TRUE", "on", "yes", "n", "Y", "~x", "nullx", "+1", ".inf", "-.Inf", "1_000", "0o17", "1e3", "''", "'it''s'", `"q"`, `"x: y"`,
		"'#'", "x#y", "http://h:1/p", "2001-12-14", "0x1F", ".5", "a:b", "{}", "[]", "[1, 2]", "{a: b, c: [d]}",
		"[ a , b ]", "{ 'k': \"v\" }", "[-c, -5, x]"}
	randomOutside = []string{`"\t"`, "<<", "&a x", "*a", "!t x", "|", "a # c", "{a: 1,}", "[a: b]", "{a:b}", "é",
		"a\tb", "- x", "-", "--", "[-]", "[-, a]", "{-: a}", "a: b", ": a", "? a", "'a", "[a", "{a: b"}
	randomKeys = []string{"a", "b", "key", "'q k'", `"dq"`, "1", "true", "x y", "-k", "a#b", "k", "c", "d", "e"}
	// randomBadKeys are keys outside the subset.
	randomBadKeys = []string{"k:", "? k", "<<", "- k", "&a k", "[k]"}
)

// randomScalar returns a random scalar or flow collection, nine times in
// ten one that fastParse reads.
func randomScalar(rng *rand.Rand) string {
	if rng.Intn(10) == 0 {
		return randomOutside[rng.Intn(len(randomOutside))]
	}
	return randomScalars[rng.Intn(len(randomScalars))]
}

// randomBlock writes a random block mapping or sequence at indent.
func randomBlock(rng *rand.Rand, b *strings.Builder, indent, depth int) {
	pad := strings.Repeat(" ", indent)
	seq := depth > 0 && rng.Intn(4) == 0
	for n := 1 + rng.Intn(4); n > 0; n-- {
		if rng.Intn(12) == 0 {
			b.WriteString("\n") // a blank line
		}
		if seq {
			b.WriteString(pad + "-")
		} else {
			k := randomKeys[rng.Intn(len(randomKeys))]
			if rng.Intn(20) == 0 {
				k = randomBadKeys[rng.Intn(len(randomBadKeys))]
			}
			b.WriteString(pad + k + ":")
		}
		switch r := rng.Intn(10); {
		case r < 6 || depth > 3:
			b.WriteString(" " + randomScalar(rng) + strings.Repeat(" ", rng.Intn(2)) + "\n")
		case r == 6 && !seq:
			b.WriteString("\n") // a sequence in the key's column
			for m := 1 + rng.Intn(3); m > 0; m-- {
				b.WriteString(pad + "- " + randomScalar(rng) + "\n")
			}
		case r == 7 && seq:
			b.WriteString(" ") // a compact mapping
			var inner strings.Builder
			randomBlock(rng, &inner, indent+2, depth+1)
			b.WriteString(strings.TrimLeft(inner.String(), " \n"))
		default:
			b.WriteString("\n")
			randomBlock(rng, b, indent+1+rng.Intn(4), depth+1)
		}
	}
	if depth == 0 && rng.Intn(5) == 0 {
		b.WriteString("x: y") // no final newline
	}
}

// FuzzFastYAML feeds arbitrary bytes to fastParse: whatever it reads,
// yaml.v3 must read the same. Seeds are the cases of TestFastYAML.
func FuzzFastYAML(f *testing.F) {
	for _, c := range fastYAMLCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFast(t, data)
	})
}

// TestPlainTag holds plainTag to ShortTag on every one- and two-byte
// printable word and on the words yaml.v3 resolves.
func TestPlainTag(t *testing.T) {
	words := []string{"true", "True", "TRUE", "false", "False", "FALSE", "~", "null", "Null", "NULL", "yes", "no", "on", "off",
		"y", "n", ".nan", ".NaN", ".inf", "+.inf", "-.Inf", "12", "-3", "1.5", "0x1F", "2001-12-14", "tru", "nul", "falsey"}
	for a := byte(' ' + 1); a <= '~'; a++ {
		words = append(words, string(a))
		for b := byte(' ' + 1); b <= '~'; b++ {
			words = append(words, string([]byte{a, b}))
		}
	}
	for _, w := range words {
		if got, want := plainTag(w), (&yaml.Node{Kind: yaml.ScalarNode, Value: w}).ShortTag(); got != want {
			t.Errorf("plainTag(%q): got %s, want %s", w, got, want)
		}
	}
}
