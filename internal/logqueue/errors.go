package logqueue

import "errors"

// ErrWrite wraps the error of a write that failed after its Write had
// returned.
var ErrWrite = errors.New("logqueue: an earlier write failed")
