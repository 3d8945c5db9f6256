package jobs

import (
	"context"
	"fmt"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// funcEntry is one registered Go job function.
type funcEntry struct {
	name    string
	argType reflect.Type
	// decode decodes a job's args node (nil: the zero value) strictly.
	decode func(n *yaml.Node) (any, []argProblem)
	call   func(ctx context.Context, r Run, args any) error
	// cache holds the decoded args of Jobs built by hand (funcargs.go).
	cache argsCache
}

// argProblem is one problem in a job's args, at a line of the config file.
type argProblem struct {
	line int
	msg  string
}

var registry = struct {
	sync.RWMutex
	m map[string]*funcEntry
}{m: map[string]*funcEntry{}}

// Register binds the name used by `func:` in jobs.yaml to fn. Each run calls
// fn with a context that is cancelled on lease loss (cause
// locker.ErrLeaseLost), timeout and shutdown, the Run (job, slot, fence,
// attempt, replica, logger), and the job's YAML `args` decoded into a T:
// strictly, so an unknown key or a wrong type in args is a config error that
// Load reports with its line. Without `args` fn gets T's zero value; use
// struct{} for a function that takes no arguments (then any args are an error).
//
// The args are decoded once, when Load reads the configuration (for a Job
// built in code, at its first run), not on every run. Each run receives a
// copy of that T, so assigning to args or its fields does not reach the next
// run; but what the maps, slices and pointers in T (or T itself, if it is
// one) refer to is shared by every run of the job, concurrent runs
// included: fn must treat it as read-only.
//
// Register is meant for init functions or main, before Load: the registry is
// read when the configuration is decoded. Registering a name twice panics, as
// http.HandleFunc does: two functions answering to one name in a binary is a
// programming error that must not be resolved silently. An empty name, a name
// with spaces or a nil fn panics too. A panic inside fn is recovered and
// becomes the run's outcome (wrapping ErrPanic), not a crashed replica.
func Register[T any](name string, fn func(ctx context.Context, r Run, args T) error) {
	if !funcNameRE.MatchString(name) {
		panic(fmt.Sprintf("jobs: Register: bad function name %q (want %s)", name, funcNameRE))
	}
	if fn == nil {
		panic("jobs: Register: nil function for " + strconv.Quote(name))
	}
	e := &funcEntry{
		name:    name,
		argType: reflect.TypeFor[T](),
		decode: func(n *yaml.Node) (any, []argProblem) {
			var v T
			if n == nil {
				return v, nil
			}
			if ps := decodeStrict(n, &v); len(ps) > 0 {
				return nil, ps
			}
			return v, nil
		},
		call: func(ctx context.Context, r Run, args any) error {
			return fn(ctx, r, args.(T))
		},
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic("jobs: Register: function " + strconv.Quote(name) + " registered twice")
	}
	registry.m[name] = e
}

var funcNameRE = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,128}$`)

// Registered returns the registered function names, sorted.
func Registered() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.m))
	for n := range registry.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func lookupFunc(name string) *funcEntry {
	registry.RLock()
	defer registry.RUnlock()
	return registry.m[name]
}

// invoke calls the function with panics turned into errors.
func (e *funcEntry) invoke(ctx context.Context, r Run, args any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.Logger.Error().Str("func", e.name).Interface("panic", p).Bytes("stack", debug.Stack()).Msg("job function panicked")
			err = fmt.Errorf("%w: %s: %v", ErrPanic, e.name, p)
		}
	}()
	return e.call(ctx, r, args)
}

// decodeStrict decodes n into v (a pointer), reporting unknown keys (which
// yaml.v3 ignores when decoding from a node) and type errors with their lines.
func decodeStrict(n *yaml.Node, v any) []argProblem {
	var ps []argProblem
	budget := maxArgNodes
	checkKnown(n, reflect.TypeOf(v).Elem(), &budget, &ps)
	if len(ps) > 0 {
		return ps
	}
	if err := decodeNode(n, v); err != nil {
		var te *yaml.TypeError
		if asTypeError(err, &te) {
			for _, m := range te.Errors {
				ps = append(ps, typeErrorProblem(m, n.Line))
			}
			return ps
		}
		return []argProblem{{line: n.Line, msg: err.Error()}}
	}
	return nil
}

// decodeNode is n.Decode(v) with a panic in yaml.v3 turned into an error.
func decodeNode(n *yaml.Node, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode: %v", r)
		}
	}()
	return n.Decode(v)
}

func asTypeError(err error, te **yaml.TypeError) bool {
	t, ok := err.(*yaml.TypeError)
	if ok {
		*te = t
	}
	return ok
}

// typeErrorProblem splits yaml.v3's "line N: message".
func typeErrorProblem(m string, fallback int) argProblem {
	if rest, ok := strings.CutPrefix(m, "line "); ok {
		if num, msg, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return argProblem{line: line, msg: msg}
			}
		}
	}
	return argProblem{line: fallback, msg: m}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// maxArgNodes bounds the nodes checkKnown visits, aliases included, so that
// an alias bomb in args cannot stall the decoder (yaml.v3's Decode then
// refuses it on its own alias ratio rule).
const maxArgNodes = 100_000

// checkKnown reports mapping keys that name no field of the struct type t,
// recursively through pointers, slices, arrays, maps and structs. Types with
// their own UnmarshalYAML are trusted.
func checkKnown(n *yaml.Node, t reflect.Type, budget *int, ps *[]argProblem) {
	if *budget <= 0 || n == nil {
		return
	}
	*budget--
	if n.Kind == yaml.AliasNode {
		checkKnown(n.Alias, t, budget, ps)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type error, reported by Decode
		}
		fields, anyKey := structFields(t)
		if anyKey {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				known := strings.Join(sortedKeys(fields), ", ")
				if known == "" {
					known = "none"
				}
				*ps = append(*ps, argProblem{line: k.Line, msg: fmt.Sprintf("unknown key %q (known: %s)", k.Value, known)})
				continue
			}
			checkKnown(val, ft, budget, ps)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				checkKnown(c, t.Elem(), budget, ps)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				checkKnown(n.Content[i], t.Elem(), budget, ps)
			}
		}
	}
}

// structFields maps yaml.v3's key names of t to field types, following
// inline structs; anyKey is true when t has an inline map (any key goes).
func structFields(t reflect.Type) (fields map[string]reflect.Type, anyKey bool) {
	fields = map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				anyKey = true
			case reflect.Struct:
				sub, any2 := structFields(ft)
				anyKey = anyKey || any2
				for k, v := range sub {
					fields[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, anyKey
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
