package share

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// credentialFields always count in the default key, besides the fields the
// proxy owns: a backend that reads the client's own session cookie or
// Authorization header must never hand one user's stream to another.
var credentialFields = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// DefaultKey is the sharing key of an upstream request: its method, host,
// path and query (sorted, so that re-encoding does not split a stream),
// and the values of the credential fields it carries to the upstream, the
// ones the proxy owns and the client's own Authorization and Cookie (so
// that clients with different credentials never share). Last-Event-ID
// plays no part. The key is a hash: credentials are not kept in the
// registry as they are.
func DefaultKey(up *http.Request, owned []string) string {
	h := sha256.New()
	for _, s := range []string{up.Method, up.Host, up.URL.Path, up.URL.Query().Encode()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, f := range append(owned, credentialFields...) {
		for _, v := range up.Header.Values(f) {
			h.Write([]byte(f))
			h.Write([]byte{':'})
			h.Write([]byte(v))
			h.Write([]byte{0})
		}
	}
	return "default:" + hex.EncodeToString(h.Sum(nil))
}

// CustomKey is the sharing key from a configured template's expansion.
func CustomKey(expanded string) string {
	sum := sha256.Sum256([]byte(expanded))
	return "custom:" + hex.EncodeToString(sum[:])
}
