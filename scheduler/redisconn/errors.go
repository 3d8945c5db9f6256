package redisconn

import "errors"

// Sentinel errors of Dial.
var (
	// ErrNoRedis is returned by Dial when the block names no Redis.
	ErrNoRedis = errors.New("redisconn: no Redis configured")
	// ErrBadURL wraps the reason a Redis URL was refused; the message shows
	// the URL without its password.
	ErrBadURL = errors.New("redisconn: bad redis url")
	// ErrTLS is wrapped by Dial's error when the block's TLS settings
	// cannot make a TLS configuration: a CA or client certificate file
	// that cannot be read or parsed (its own error is wrapped beside it),
	// or a certificate without its key.
	ErrTLS = errors.New("redisconn: bad TLS settings")
)
