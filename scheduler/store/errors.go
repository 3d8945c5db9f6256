package store

import "errors"

// ErrACL is wrapped by CheckRights's error when the Redis ACL user refuses
// a command, a key or a channel that redcron's scripts need.
var ErrACL = errors.New("store: refused by the redis acl")
