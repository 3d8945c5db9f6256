package jobs

import (
	"runtime"
	"sync"
	"weak"

	"gopkg.in/yaml.v3"
)

// funcArgs is a func job's `args` decoded into its function's type, once.
// The value is held in an interface: each run receives a copy of it as a T
// (see Register), so the maps, slices and pointers inside T are shared by
// every run.
type funcArgs struct {
	// from is the args node the value was decoded from, for the args that
	// Load keeps on a Job (Job.args); nil in argsCache, which must not hold
	// its nodes.
	from     *yaml.Node
	once     sync.Once
	value    any
	problems []argProblem
}

// get decodes n into e's type the first time, and returns the value, or
// the problems found in n, every time.
func (a *funcArgs) get(e *funcEntry, n *yaml.Node) (any, []argProblem) {
	a.once.Do(func() { a.value, a.problems = e.decode(n) })
	return a.value, a.problems
}

// decodedArgs returns the job's args decoded into e's type: the value Load
// decoded and kept on the job, or, for a Job built by hand (or whose Args
// was replaced since), the value e's cache decodes once per args node.
func (j *Job) decodedArgs(e *funcEntry) (any, []argProblem) {
	if a := j.args; a != nil && a.from == j.Args {
		return a.get(e, j.Args)
	}
	return e.cache.get(e, j.Args)
}

// argsCache holds the args of Jobs built by hand (not by Load) for one
// registered function: decoded lazily, once per args node. Nodes are held
// weakly: an entry is dropped when its node is garbage collected, so Jobs
// built again and again do not grow the cache.
type argsCache struct {
	none   funcArgs // no args: T's zero value
	mu     sync.Mutex
	byNode map[weak.Pointer[yaml.Node]]*funcArgs
}

func (c *argsCache) get(e *funcEntry, n *yaml.Node) (any, []argProblem) {
	if n == nil {
		return c.none.get(e, nil)
	}
	key := weak.Make(n)
	c.mu.Lock()
	a := c.byNode[key]
	if a == nil {
		if c.byNode == nil {
			c.byNode = map[weak.Pointer[yaml.Node]]*funcArgs{}
		}
		a = &funcArgs{}
		c.byNode[key] = a
		runtime.AddCleanup(n, c.forget, key)
	}
	c.mu.Unlock()
	return a.get(e, n)
}

func (c *argsCache) forget(key weak.Pointer[yaml.Node]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byNode, key)
}

// size is the number of args nodes cached (for tests).
func (c *argsCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byNode)
}
