package statusapi

import (
	"net"
	"net/http"
	"slices"
	"strings"
)

// LoopbackOnly guards a server bound to a loopback address against DNS
// rebinding: a web page of another site can make a browser on this
// machine resolve the site's name to 127.0.0.1 and read the answers as
// its own, but the request then names that site in its Host header. So
// LoopbackOnly serves h only to requests whose Host (port aside) is
// localhost, a name under .localhost, an IPv4 loopback address
// (127.0.0.0/8) or [::1], or one of extra (the names a reverse proxy on
// this machine sends); the others get 421 Misdirected Request.
func LoopbackOnly(h http.Handler, extra ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host, extra) {
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "this server answers to localhost only (Host " + hostOnly(r.Host) + " refused)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's
// loopback interface (or one of extra).
func loopbackHost(host string, extra []string) bool {
	name := strings.ToLower(hostOnly(host))
	if name == "" {
		return false
	}
	if slices.ContainsFunc(extra, func(e string) bool { return strings.EqualFold(hostOnly(e), name) }) {
		return true
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// hostOnly is a Host header without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
