package proxy

import (
	"net/http"
	"strings"
)

// connectionHeaders are the response fields that HTTP/2 (RFC 9113 §8.2.2) and
// HTTP/3 (RFC 9114 §4.2) forbid. Go's HTTP/2 server drops only Connection and
// Transfer-Encoding and quic-go's HTTP/3 server drops none, while curl, Safari
// and quic-go's client reject a response carrying any of them. Content-Length
// is on the list because an event stream has no length.
var connectionHeaders = []string{
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Transfer-Encoding",
	"Upgrade",
	"Te",
	"Content-Length",
}

// CleanHeaders removes every connection-specific field from h: the fields
// that Connection lists, then the fixed list above. Content-Type is kept even
// when Connection names it, since an event stream is nothing without it.
func CleanHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.TrimSpace(tok)
			if tok != "" && !strings.EqualFold(tok, "Content-Type") {
				h.Del(tok)
			}
		}
	}
	for _, k := range connectionHeaders {
		delete(h, k)
	}
}

// IsEventStream reports whether a Content-Type value names
// text/event-stream, with any parameters and in any case. It does the work
// of mime.ParseMediaType without allocating.
func IsEventStream(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// setStreamCaching makes caches and transforming intermediaries (Caddy's own
// encode handler among them) leave the stream alone: Cache-Control gets
// no-cache unless the upstream chose its own policy, always no-transform, and
// X-Accel-Buffering: no turns off nginx-style buffering further down.
func setStreamCaching(h http.Header) {
	cc := h.Values("Cache-Control")
	switch {
	case len(cc) == 0:
		h["Cache-Control"] = noCacheNoTransform
	case !hasToken(cc, "no-transform"):
		h.Set("Cache-Control", strings.Join(cc, ", ")+", no-transform")
	}
	h["X-Accel-Buffering"] = no
}

// Shared values for header fields; the slices are full (len == cap) so an
// append by later code copies them instead of writing into them.
var (
	noCacheNoTransform = []string{"no-cache, no-transform"}
	no                 = []string{"no"}
)

// hasToken reports whether any of the comma-separated values holds token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// addVary adds field to the Vary header unless it is already listed.
func addVary(h http.Header, field string) {
	vary := h.Values("Vary")
	if hasToken(vary, field) || hasToken(vary, "*") {
		return
	}
	h.Add("Vary", field)
}
