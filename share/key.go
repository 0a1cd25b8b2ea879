package share

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// credentialFields always count in the default key, besides the fields the
// proxy owns: a backend that reads the client's own session cookie or
// Authorization header must never hand one user's stream to another.
var credentialFields = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// DefaultKey is the sharing key of an upstream request: its method, host,
// path as it goes on the wire (escaped: /a%2Fb and /a/b are different
// requests), query (see canonicalQuery), and the values of the credential
// fields it carries to the upstream, the ones the proxy owns and the
// client's own Authorization, Cookie and Proxy-Authorization, and the
// client's TLS certificate, if any (so that clients with different
// credentials never share), and of the fields in
// vary (the fields the upstream's answer may depend on that the stream's
// clients get as they are, such as Origin for its CORS fields).
// Last-Event-ID plays no part. The key is a hash: credentials are not kept
// in the registry as they are.
//
// Each part is written with its length first, so that no two different
// requests hash the same bytes, whatever bytes their parts hold.
func DefaultKey(up *http.Request, owned, vary []string) string {
	h := sha256.New()
	path := up.URL.Opaque
	if path == "" {
		path = up.URL.EscapedPath()
	}
	// A TLS client certificate is a credential as much as a cookie is: a
	// backend may know its users by it (passed on with a header_up of a
	// {http.request.tls.client.*} placeholder), and no request field
	// tells two certificates apart. Its DER bytes count (hashed, as all).
	var cert string
	if up.TLS != nil && len(up.TLS.PeerCertificates) > 0 {
		cert = string(up.TLS.PeerCertificates[0].Raw)
	}
	for _, s := range []string{up.Method, up.Host, path, canonicalQuery(up.URL.RawQuery), cert} {
		writePart(h, s)
	}
	writeFields(h, up.Header, slices.Concat(owned, credentialFields, vary))
	return "default:" + hex.EncodeToString(h.Sum(nil))
}

// CustomKey is the sharing key from a configured template's expansion, and
// the values of the fields in vary of the request (see DefaultKey).
func CustomKey(expanded string, up *http.Request, vary []string) string {
	h := sha256.New()
	writePart(h, expanded)
	writeFields(h, up.Header, vary)
	return "custom:" + hex.EncodeToString(h.Sum(nil))
}

// writePart writes s with its length in front.
func writePart(h hash.Hash, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}

// writeFields writes each named field (once, in canonical form) with the
// number of its values and the values, absent fields included: a field
// sent empty and a field not sent are told apart.
func writeFields(h hash.Hash, header http.Header, fields []string) {
	seen := make([]string, 0, len(fields))
	for _, f := range fields {
		f = textproto.CanonicalMIMEHeaderKey(f)
		if slices.Contains(seen, f) {
			continue
		}
		seen = append(seen, f)
		values := header.Values(f)
		writePart(h, f)
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(values)))])
		for _, v := range values {
			writePart(h, v)
		}
	}
}

// canonicalQuery is a raw query in a form that two requests share only if
// every backend reads them the same. The parameters are put in order of
// name, so that ?a=1&b=2 and ?b=2&a=1 share, only when that cannot change
// what a backend reads: every parameter is separated by "&", its name is
// plain (letters, digits, "-", "_", ".", "~"), and no two names are alike
// even for a backend that ignores case or reads "." or "-" as "_" (PHP
// reads "." so).
// Otherwise the query counts byte for byte: re-encodings such as %31 for 1
// do not share, and nothing a parser might drop (an invalid escape, a ";")
// is dropped here. Values always count byte for byte.
func canonicalQuery(raw string) string {
	if raw == "" || strings.Contains(raw, ";") {
		return "raw:" + raw
	}
	pairs := strings.Split(raw, "&")
	names := make([]string, len(pairs))
	for i, p := range pairs {
		name, _, _ := strings.Cut(p, "=")
		if name == "" || !plainName(name) {
			return "raw:" + raw
		}
		names[i] = foldName(name)
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(names) {
		return "raw:" + raw // a name repeats: the order of its values may matter
	}
	slices.SortFunc(pairs, func(a, b string) int {
		an, _, _ := strings.Cut(a, "=")
		bn, _, _ := strings.Cut(b, "=")
		return strings.Compare(foldName(an), foldName(bn))
	})
	return "sorted:" + strings.Join(pairs, "&")
}

// plainName reports whether a parameter name has only characters that need
// no escaping and that no parser reads differently.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return false
		}
	}
	return true
}

// foldName is the coarsest reading of a plain name that a common backend
// makes: case ignored, "." and "-" as "_".
func foldName(s string) string {
	return nameFolder.Replace(strings.ToLower(s))
}

var nameFolder = strings.NewReplacer(".", "_", "-", "_")

// key is the sharing key of the client's upstream request. Without a cors
// policy (UpstreamCORS), the upstream's CORS fields reach every client of
// the stream as they are, and they depend on the Origin of the request
// that started it: clients of different origins (or none) must not share,
// or one could strip or replace another's. With a policy, the proxy sets
// them for each client itself.
func (o *Options) key() string {
	var vary []string
	if o.UpstreamCORS {
		vary = originField
	}
	if o.KeyTemplate != "" {
		return CustomKey(o.Replacer.ReplaceAll(o.KeyTemplate, ""), o.Upstream, vary)
	}
	return DefaultKey(o.Upstream, o.Owned, vary)
}

// originField is the request field a share key covers when the upstream
// owns CORS.
var originField = []string{"Origin"}
