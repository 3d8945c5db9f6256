package jobs

import (
	"gopkg.in/yaml.v3"
)

// The history: block of a job: how many final records it keeps, and for
// how long.

// historyKeys are the keys of the history: block, in the order messages
// show them.
var historyKeys = keyTable[*History]{
	{"keep", func(d *decoder, h *History, _, v *yaml.Node, a at) {
		if x, ok := d.integer(v, a); ok {
			if x < 1 {
				d.fail(v, a, nil, "must be at least 1, got %d", x)
			} else {
				h.Keep = x
			}
		}
	}},
	{"max_age", func(d *decoder, h *History, _, v *yaml.Node, a at) {
		if t, ok := d.duration(v, a); ok {
			if t < MinHistoryAge {
				d.fail(v, a, nil, "must be at least %s, got %s", MinHistoryAge, t)
			} else {
				h.MaxAge = t
			}
		}
	}},
}

// history decodes a history: block into h, key by key over what h holds.
func (d *decoder) history(n *yaml.Node, a at, h *History) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping %s, got %s", historyKeys.shape(), describe(n))
		return
	}
	decodeBlock(d, n, a, historyKeys, h)
}
