package jobs

import (
	"gopkg.in/yaml.v3"
)

// The retry: block of a job: attempts and backoff within one slot.

// retryKeys are the keys of the retry: block, in the order messages show them.
var retryKeys = keyTable[*Retry]{
	{"attempts", func(d *decoder, r *Retry, _, v *yaml.Node, a at) {
		if x, ok := d.integer(v, a); ok {
			if x < 1 {
				d.fail(v, a, nil, "must be at least 1 (the first attempt counts), got %d", x)
			} else {
				r.Attempts = x
			}
		}
	}},
	{"backoff", func(d *decoder, r *Retry, _, v *yaml.Node, a at) {
		if t, ok := d.nonNegDuration(v, a); ok {
			r.Backoff = t
		}
	}},
	{"max_backoff", func(d *decoder, r *Retry, _, v *yaml.Node, a at) {
		if t, ok := d.nonNegDuration(v, a); ok {
			r.MaxBackoff = t
		}
	}},
}

// retry decodes a retry: block into r, key by key over what r holds.
func (d *decoder) retry(n *yaml.Node, a at, r *Retry) {
	if deref(n).Kind != yaml.MappingNode {
		d.fail(n, a, nil, "want a mapping %s, got %s", retryKeys.shape(), describe(n))
		return
	}
	decodeBlock(d, n, a, retryKeys, r)
	if r.MaxBackoff < r.Backoff {
		d.fail(n, a.sub("max_backoff"), nil, "max_backoff %s is shorter than backoff %s", r.MaxBackoff, r.Backoff)
	}
}
