package embedredis

import "errors"

// ErrNotEmbedded is wrapped by Verify's errors: the server at the address
// is not (provably) an embedded server started on this machine.
var ErrNotEmbedded = errors.New("embedredis: not this machine's embedded trial server")
