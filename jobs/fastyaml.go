package jobs

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file is a parser for the plain subset of YAML that generated
// jobs.yaml files use: block mappings and sequences, one-line flow
// mappings and sequences, plain and quoted scalars, printable ASCII, no
// comments. For such a file it returns the node tree that yaml.v3 returns,
// about three times faster and with a third of the allocations: with
// 100,000 jobs, yaml.v3 building its tree was three quarters of a load. Anything outside the subset (a comment, an
// anchor, a block scalar, an escape, a tab, a second document, a syntax
// error) makes it give up, and the file is parsed by yaml.v3, whose
// messages name the line. FuzzFastYAML holds it to yaml.v3's tree.
//
// Comments are outside the subset because yaml.v3 keeps them on the nodes
// and a func job's args node is marshalled, comments and all, into the
// job's fingerprint that replicas compare.

// fastMaxDepth bounds the nesting that fastParse follows; deeper files go to
// yaml.v3.
const fastMaxDepth = 64

// fastMaxKey is the longest key fastParse reads (yaml.v3 refuses an
// implicit key longer than 1,024 characters).
const fastMaxKey = 1000

// fastParse returns the document node of data as yaml.v3's Decode would,
// without comments, or ok false if data is outside the subset it reads.
func fastParse(data []byte) (doc *yaml.Node, ok bool) {
	return fastParseStream(data, nil)
}

// fastParseStream is fastParse that hands each entry of the top-level jobs:
// block mapping to s as soon as it is read, instead of keeping it in the
// tree: that mapping's node is then returned without Content. With s nil
// it is fastParse. A false ok may come after s was handed entries.
func fastParseStream(data []byte, s jobSink) (doc *yaml.Node, ok bool) {
	for _, c := range data {
		if (c < ' ' || c > '~') && c != '\n' {
			return nil, false
		}
	}
	p := &fastParser{src: string(data), line: 1, strs: map[string]string{}, sink: s}
	if !p.nextLine() {
		return nil, false // empty: yaml.v3 says so
	}
	root, ok := p.blockNode(p.col(), 0)
	if !ok || !p.eof() || root.Kind != yaml.MappingNode {
		return nil, false
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Line: root.Line, Column: root.Column, Content: []*yaml.Node{root}}, true
}

// fastParser is the state of one fastParse: the file and a position in it.
type fastParser struct {
	src  string
	pos  int // offset of the next byte to read
	line int // 1-based line of pos
	bol  int // offset of the first byte of pos's line
	// strs holds the first fastMaxShared distinct short values read: a
	// value is a copy, not a substring that would keep the whole file
	// alive through a job, and the keys and values that every job repeats
	// are stored once.
	strs map[string]string
	// stack holds the children of the collections being read, each
	// collection's above its parent's, so that each gets its Content in
	// one allocation of the right size.
	stack []*yaml.Node
	// sink, if not nil, takes the entries of the top-level jobs: block
	// mapping (see fastParseStream); atJobs is set while the value of the
	// first top-level "jobs" key is read.
	sink   jobSink
	atJobs bool
	// free holds the nodes of streamed jobs that nothing kept, for node
	// to reuse: a job's nodes were most of a large file's allocations.
	free []*yaml.Node
}

// fastMaxFree bounds the nodes kept for reuse: more than one job has.
const fastMaxFree = 256

// reuse adds n and its descendants to the nodes that node reuses.
func (p *fastParser) reuse(n *yaml.Node) {
	if len(p.free) >= fastMaxFree {
		return
	}
	p.free = append(p.free, n)
	for _, c := range n.Content {
		p.reuse(c)
	}
}

// jobSink takes the jobs of a file as fastParseStream reads them.
type jobSink interface {
	// begin is called once, when the jobs: block mapping starts, with the
	// top-level keys and values read before it; m is that mapping's node.
	begin(m *yaml.Node, before []*yaml.Node)
	// job is called with each entry of the jobs: mapping, in file order.
	// It returns whether it kept none of their nodes, which are then
	// reused for the next.
	job(k, v *yaml.Node) (done bool)
	// failed reports whether the file has a problem: the parse stops,
	// and the file is decoded again from its tree.
	failed() bool
}

// fastMaxSharedLen is the longest value that fastParser.str shares, and
// fastMaxShared how many distinct values it keeps to share (a map of
// 100,000 job names cost more than it saved).
const (
	fastMaxSharedLen = 64
	fastMaxShared    = 4096
)

// str returns a copy of src[start:end], shared with the equal values
// before it when short.
func (p *fastParser) str(start, end int) string {
	v := p.src[start:end]
	if len(v) > fastMaxSharedLen {
		return strings.Clone(v)
	}
	if s, ok := p.strs[v]; ok {
		return s
	}
	s := strings.Clone(v)
	if len(p.strs) < fastMaxShared {
		p.strs[s] = s
	}
	return s
}

func (p *fastParser) eof() bool { return p.pos >= len(p.src) }

// col is pos's 0-based column.
func (p *fastParser) col() int { return p.pos - p.bol }

// peek returns the byte at pos+i, or 0 past the end.
func (p *fastParser) peek(i int) byte {
	if p.pos+i < len(p.src) {
		return p.src[p.pos+i]
	}
	return 0
}

func (p *fastParser) spaces() {
	for p.peek(0) == ' ' {
		p.pos++
	}
}

// nextLine moves pos to the first non-space byte of the next line that
// holds one, from pos at a line's start. It returns false at the end of
// the file and also, leaving pos on it, at a comment or at a line that
// starts a document marker: the caller gives up unless eof.
func (p *fastParser) nextLine() bool {
	for !p.eof() {
		p.spaces()
		switch c := p.peek(0); {
		case c == '\n':
			p.pos++
			p.line++
			p.bol = p.pos
		case c == 0:
			return false
		case c == '#', p.atMarker():
			return false
		default:
			return true
		}
	}
	return false
}

// endLine reads the rest of a line that must hold only spaces, and moves
// to the next content line (see nextLine).
func (p *fastParser) endLine() bool {
	p.spaces()
	switch p.peek(0) {
	case 0:
		return true
	case '\n':
		p.pos++
		p.line++
		p.bol = p.pos
		p.nextLine()
		return true
	}
	return false
}

// more reports whether pos is on a content line (not at the end, a comment
// or a marker that nextLine stopped at).
func (p *fastParser) more() bool {
	if p.eof() {
		return false
	}
	return p.peek(0) != '#' && !p.atMarker()
}

// atMarker reports whether pos starts a line with "---" or "...", which
// may mark a document's start or end.
func (p *fastParser) atMarker() bool {
	rest := p.src[p.pos:]
	return p.col() == 0 && (strings.HasPrefix(rest, "---") || strings.HasPrefix(rest, "..."))
}

// children moves the nodes pushed since base off the stack into n's Content.
func (p *fastParser) children(n *yaml.Node, base int) {
	if len(p.stack) > base {
		n.Content = slices.Clone(p.stack[base:])
		clear(p.stack[base:])
		p.stack = p.stack[:base]
	}
}

func (p *fastParser) node(kind yaml.Kind, tag string) *yaml.Node {
	if k := len(p.free); k > 0 {
		n := p.free[k-1]
		p.free = p.free[:k-1]
		*n = yaml.Node{Kind: kind, Tag: tag, Line: p.line, Column: p.col() + 1}
		return n
	}
	return &yaml.Node{Kind: kind, Tag: tag, Line: p.line, Column: p.col() + 1}
}

// atSeqEntry reports whether pos is at a block sequence's "- " (or "-" at
// the end of its line).
func (p *fastParser) atSeqEntry() bool {
	return p.peek(0) == '-' && (p.peek(1) == ' ' || p.peek(1) == '\n' || p.peek(1) == 0)
}

// blockNode reads the block mapping or sequence whose first entry is at
// pos, in column indent.
func (p *fastParser) blockNode(indent, depth int) (*yaml.Node, bool) {
	if depth > fastMaxDepth {
		return nil, false
	}
	if p.atSeqEntry() {
		return p.blockSequence(indent, depth)
	}
	if _, _, isKey := p.scanKey(); isKey {
		return p.blockMapping(indent, depth)
	}
	return nil, false
}

// blockMapping reads a block mapping whose keys are in column indent, the
// first at pos. It returns at the first content line that holds no more of
// it.
func (p *fastParser) blockMapping(indent, depth int) (*yaml.Node, bool) {
	m := p.node(yaml.MappingNode, "!!map")
	base := len(p.stack)
	defer p.children(m, base)
	stream := p.atJobs && depth == 1
	if stream {
		p.sink.begin(m, p.stack)
	}
	p.atJobs = false
	for {
		k, ok := p.key()
		if !ok {
			return nil, false
		}
		// The first top-level jobs: key's value is streamed if it is a
		// block mapping (the root is the first collection on the stack).
		first := depth == 0 && p.sink != nil && k.Value == "jobs"
		p.atJobs = first
		v, ok := p.blockValue(indent, depth, true)
		p.atJobs = false
		if !ok {
			return nil, false
		}
		if first {
			p.sink = nil
		}
		if stream {
			if p.sink.job(k, v) {
				p.reuse(k)
				p.reuse(v)
			}
			if p.sink.failed() {
				return nil, false
			}
		} else {
			p.stack = append(p.stack, k, v)
		}
		if !p.more() {
			return m, true
		}
		switch c := p.col(); {
		case c < indent:
			return m, true
		case c > indent:
			return nil, false
		}
	}
}

// blockSequence reads a block sequence whose "- " are in column indent,
// the first at pos.
func (p *fastParser) blockSequence(indent, depth int) (*yaml.Node, bool) {
	s := p.node(yaml.SequenceNode, "!!seq")
	base := len(p.stack)
	defer p.children(s, base)
	for {
		p.pos++ // the '-'
		v, ok := p.blockValue(indent, depth, false)
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, v)
		if !p.more() {
			return s, true
		}
		switch c := p.col(); {
		case c < indent, c == indent && !p.atSeqEntry():
			return s, true // a mapping's next key, if indent is its column
		case c > indent:
			return nil, false
		}
	}
}

// blockValue reads the value after a mapping key's ':' or a sequence's '-'
// (inMap says which) whose entries are in column indent: on the same line
// a scalar, a flow collection or (in a sequence) a compact mapping, or else
// a block node on the lines below.
func (p *fastParser) blockValue(indent, depth int, inMap bool) (*yaml.Node, bool) {
	if p.peek(0) != ' ' && p.peek(0) != '\n' && p.peek(0) != 0 {
		return nil, false
	}
	p.spaces()
	if c := p.peek(0); c == '\n' || c == 0 {
		if !p.endLine() || !p.more() {
			return nil, false // an empty value: a null whose position yaml.v3 sets its own way
		}
		switch c := p.col(); {
		case c > indent:
			return p.blockNode(c, depth+1)
		case c == indent && inMap && p.atSeqEntry():
			return p.blockSequence(c, depth+1) // "key:\n- a": a sequence in the key's column
		}
		return nil, false
	}
	if !inMap {
		if p.atSeqEntry() {
			return nil, false // "- - a"
		}
		if _, _, isKey := p.scanKey(); isKey {
			return p.blockMapping(p.col(), depth+1) // "- key: value"
		}
	}
	var v *yaml.Node
	var ok bool
	switch p.peek(0) {
	case '{', '[':
		v, ok = p.flowNode(depth + 1)
	case '"', '\'':
		v, ok = p.quoted()
	default:
		v, ok = p.plain(false)
	}
	if !ok || !p.endLine() {
		return nil, false
	}
	return v, true
}

// scanKey reports whether pos starts "key:" followed by a space or the
// end of the line, with key a plain or quoted scalar, and where the ':' is.
func (p *fastParser) scanKey() (colon int, quoted, isKey bool) {
	save := *p
	defer func() { *p = save }()
	var ok bool
	switch p.peek(0) {
	case '"', '\'':
		_, ok = p.quoted()
		quoted = true
	default:
		_, ok = p.plainEnd(false)
	}
	if !ok || p.peek(0) != ':' || p.pos-save.pos > fastMaxKey {
		return 0, false, false
	}
	if c := p.peek(1); c != ' ' && c != '\n' && c != 0 {
		return 0, false, false
	}
	return p.pos, quoted, true
}

// key reads a block mapping's key and its ':'.
func (p *fastParser) key() (*yaml.Node, bool) {
	_, quoted, isKey := p.scanKey()
	if !isKey {
		return nil, false
	}
	var k *yaml.Node
	var ok bool
	if quoted {
		k, ok = p.quoted()
	} else {
		k, ok = p.plain(false)
	}
	if !ok || p.peek(0) != ':' {
		return nil, false
	}
	p.pos++
	return k, true
}

// isIndicator reports whether c cannot start a plain scalar, unless it is
// a '-' followed by a plainSafe byte ("-c", "-5"). YAML also lets "?" and
// ":" start one so; the subset does not.
func isIndicator(c byte) bool { return byteIn(&indicators, c) }

// byteSet is a set of bytes, for the scanner's tests of one byte.
type byteSet [256 / 64]uint64

func newByteSet(chars string) (s byteSet) {
	for i := 0; i < len(chars); i++ {
		s[chars[i]/64] |= 1 << (chars[i] % 64)
	}
	return s
}

func byteIn(s *byteSet, c byte) bool { return s[c/64]&(1<<(c%64)) != 0 }

var (
	indicators = newByteSet("-?:,[]{}#&*!|>'\"%@`")
	// flowStops end a plain scalar in a flow collection, as yaml.v3's
	// scanner has it ('?' too, unlike the spec).
	flowStops = newByteSet(",?[]{}")
	// numberStarts and wordStarts start the plain scalars that yaml.v3
	// may resolve to other than a string (see plainTag).
	numberStarts = newByteSet("+-.0123456789")
	wordStarts   = newByteSet("yYnNtTfFoO~")
)

// plainSafe reports whether c may follow a plain scalar's leading '-'.
func plainSafe(c byte, flow bool) bool {
	return c > ' ' && c <= '~' && !(flow && byteIn(&flowStops, c))
}

// plainEnd moves pos past the plain scalar at pos to where it stops: a
// ": " or ":" at the end of the line (left at pos), the end of the line,
// or in a flow collection a flow indicator. The scalar is src[start:end].
func (p *fastParser) plainEnd(flow bool) (end int, ok bool) {
	start := p.pos
	if c := p.peek(0); c == 0 || c == ' ' || c == '\n' || isIndicator(c) && !(c == '-' && plainSafe(p.peek(1), flow)) {
		return 0, false
	}
	end = p.pos
	for {
		c := p.peek(0)
		switch {
		case c == 0 || c == '\n':
			return end, end > start
		case c == ':':
			if n := p.peek(1); n == ' ' || n == '\n' || n == 0 {
				return end, end > start
			}
			if flow {
				return 0, false // "a:b" in a flow collection: yaml.v3's reading is not the spec's
			}
		case c == '#' && p.src[p.pos-1] == ' ':
			return 0, false // a comment
		case flow && byteIn(&flowStops, c):
			return end, end > start
		}
		p.pos++
		if c != ' ' {
			end = p.pos
		}
	}
}

// plain reads a plain scalar; pos is left after its last non-space byte.
func (p *fastParser) plain(flow bool) (*yaml.Node, bool) {
	n := p.node(yaml.ScalarNode, "")
	start := p.pos
	end, ok := p.plainEnd(flow)
	if !ok {
		return nil, false
	}
	n.Value = p.str(start, end)
	if n.Value == "<<" {
		return nil, false // a merge key
	}
	n.Tag = plainTag(n.Value)
	p.pos = end
	return n, true
}

// plainTag is the tag yaml.v3 resolves for a plain scalar: ShortTag, with
// the answer for most words (a job's name, most keys) found without
// yaml.v3's resolve, which allocates. Only a value starting with a sign, a
// digit, a '.' or one of "yYnNtTfFoO~" can be other than a string, and of
// those that start with a letter or '~', only the ones listed here.
func plainTag(v string) string {
	if v == "" {
		return "!!null"
	}
	switch c := v[0]; {
	case byteIn(&numberStarts, c):
		return (&yaml.Node{Kind: yaml.ScalarNode, Value: v}).ShortTag()
	case !byteIn(&wordStarts, c):
		return "!!str"
	}
	switch v {
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "~", "null", "Null", "NULL":
		return "!!null"
	}
	return "!!str"
}

// quoted reads a quoted scalar on one line, without escapes.
func (p *fastParser) quoted() (*yaml.Node, bool) {
	n := p.node(yaml.ScalarNode, "!!str")
	q := p.peek(0)
	p.pos++
	start := p.pos
	var b strings.Builder // only for a single-quoted scalar with ''
	for {
		c := p.peek(0)
		switch {
		case c == 0 || c == '\n':
			return nil, false
		case q == '"' && c == '\\':
			return nil, false
		case c == q && q == '\'' && p.peek(1) == '\'':
			b.WriteString(p.src[start : p.pos+1])
			p.pos += 2
			start = p.pos
			continue
		case c == q:
			if b.Len() > 0 {
				b.WriteString(p.src[start:p.pos])
				n.Value = b.String()
			} else {
				n.Value = p.str(start, p.pos)
			}
			p.pos++
			if q == '"' {
				n.Style = yaml.DoubleQuotedStyle
			} else {
				n.Style = yaml.SingleQuotedStyle
			}
			return n, true
		}
		p.pos++
	}
}

// flowNode reads a flow mapping or sequence that ends on its line.
func (p *fastParser) flowNode(depth int) (*yaml.Node, bool) {
	if depth > fastMaxDepth {
		return nil, false
	}
	isMap := p.peek(0) == '{'
	var n *yaml.Node
	if isMap {
		n = p.node(yaml.MappingNode, "!!map")
	} else {
		n = p.node(yaml.SequenceNode, "!!seq")
	}
	n.Style = yaml.FlowStyle
	base := len(p.stack)
	defer p.children(n, base)
	closer := byte(']')
	if isMap {
		closer = '}'
	}
	p.pos++
	p.spaces()
	if p.peek(0) == closer {
		p.pos++
		return n, true
	}
	for {
		if isMap {
			start := p.pos
			k, ok := p.flowScalar()
			if !ok || p.peek(0) != ':' || p.peek(1) != ' ' || p.pos-start > fastMaxKey {
				return nil, false
			}
			p.pos++
			p.spaces()
			p.stack = append(p.stack, k)
		}
		var v *yaml.Node
		var ok bool
		if c := p.peek(0); c == '{' || c == '[' {
			v, ok = p.flowNode(depth + 1)
		} else {
			v, ok = p.flowScalar()
		}
		if !ok {
			return nil, false
		}
		p.stack = append(p.stack, v)
		p.spaces()
		switch p.peek(0) {
		case ',':
			p.pos++
			p.spaces()
			if c := p.peek(0); c == ']' || c == '}' {
				return nil, false // a trailing comma
			}
		case closer:
			p.pos++
			return n, true
		default:
			return nil, false // "k: v" in a flow sequence, or no closer on the line
		}
	}
}

// flowScalar reads a plain or quoted scalar in a flow collection.
func (p *fastParser) flowScalar() (*yaml.Node, bool) {
	if c := p.peek(0); c == '"' || c == '\'' {
		return p.quoted()
	}
	return p.plain(true)
}
