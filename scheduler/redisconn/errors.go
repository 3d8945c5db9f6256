package redisconn

import "errors"

// Sentinel errors of Dial.
var (
	// ErrNoRedis is returned by Dial when the block names no Redis.
	ErrNoRedis = errors.New("redisconn: no Redis configured")
	// ErrBadURL wraps the reason a Redis URL was refused; the message shows
	// the URL without its password.
	ErrBadURL = errors.New("redisconn: bad redis url")
)
