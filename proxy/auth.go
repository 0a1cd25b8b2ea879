package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/net/http/httpguts"
)

// AuthHeader is one header field the proxy owns on the upstream request:
// its value comes from a placeholder template, never from the client. It is
// the JSON form of an entry of sse_proxy's "auth_headers".
type AuthHeader struct {
	// The header field name, e.g. "Authorization".
	Field string `json:"field"`
	// The value; placeholders are expanded per request.
	Value string `json:"value"`
}

// Shaper turns a client request into the request sent upstream: it sets the
// headers the proxy owns, drops the client's copies of them, and removes
// the query parameters that carried credentials. It is read-only after
// NewShaper and safe for concurrent use.
type Shaper struct {
	headers    []AuthHeader
	owned      []string // canonical field names, deduplicated
	stripQuery []string // query parameter names removed from the upstream URL
	idQuery    []string // query parameters that carry Last-Event-ID
}

// queryPlaceholder matches the query-parameter placeholder, the form the
// Caddyfile shorthand {query.NAME} expands to.
var queryPlaceholder = regexp.MustCompile(`\{http\.request\.uri\.query\.([^{}]+)\}`)

// ErrCredentials is wrapped by the error Shape returns when a credential
// placeholder is empty or unknown; the request must be answered 401.
var ErrCredentials = errors.New("credential missing")

// ErrBadRequest is wrapped by the error Shape returns when what the client
// sent cannot go into the upstream request's header (a control character
// in a credential or a last event id); the request must be answered 400.
// Go's HTTP client would refuse to send it, and reverse_proxy would count
// that refusal as a failure of the upstream.
var ErrBadRequest = errors.New("bad request")

// NewShaper validates the auth headers and collects the query parameters
// their values read. idQuery names query parameters that carry
// Last-Event-ID; they are stripped too.
func NewShaper(headers []AuthHeader, idQuery []string) (*Shaper, error) {
	s := &Shaper{headers: headers, idQuery: idQuery}
	seen := map[string]bool{}
	for _, h := range headers {
		if !validFieldName(h.Field) {
			return nil, fmt.Errorf("auth_header: %q is not a header field name", h.Field)
		}
		if strings.TrimSpace(h.Value) == "" {
			return nil, fmt.Errorf("auth_header %s: a value is required", h.Field)
		}
		canon := textproto.CanonicalMIMEHeaderKey(h.Field)
		if !seen[canon] {
			seen[canon] = true
			s.owned = append(s.owned, canon)
		}
		for _, m := range queryPlaceholder.FindAllStringSubmatch(h.Value, -1) {
			s.stripQuery = append(s.stripQuery, m[1])
		}
	}
	s.stripQuery = append(s.stripQuery, idQuery...)
	return s, nil
}

// Shape returns the request to pass upstream. The client's request is left
// as it was (Caddy's logs and placeholders keep reading it); the returned
// request shares its body but has its own context (ctx), header map and URL.
// Placeholders are expanded before anything is removed, so a template may
// read the very query parameter that is then stripped.
func (s *Shaper) Shape(ctx context.Context, r *http.Request, repl *caddy.Replacer) (*http.Request, error) {
	// Each step is a call of its own, so that Shape's frame stays small:
	// a shared client's goroutine keeps the stack its deepest call needed
	// for as long as its stream lasts (see share.Serve).
	values, err := s.credentials(repl)
	if err != nil {
		return nil, err
	}
	out := r.WithContext(ctx)
	out.Header = r.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	for _, f := range s.owned {
		delete(out.Header, f)
	}
	for i, h := range s.headers {
		out.Header.Add(h.Field, values[i])
	}
	dropAcceptEncoding(r, out.Header)
	if err := s.lastEventIDFromQuery(r, out.Header); err != nil {
		return nil, err
	}
	if len(s.stripQuery) > 0 {
		s.stripTokens(r, out)
	}
	return out, nil
}

// credentials expands the auth_header values, one per s.headers.
func (s *Shaper) credentials(repl *caddy.Replacer) ([]string, error) {
	if len(s.headers) == 0 {
		return nil, nil
	}
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	values := make([]string, len(s.headers))
	for i, h := range s.headers {
		v, err := repl.ReplaceOrErr(h.Value, true, true)
		if err != nil {
			// The error names the field only: the value is a secret.
			return nil, fmt.Errorf("auth_header %s: %w: a placeholder is empty", h.Field, ErrCredentials)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			// Named, never shown: the value is a secret.
			return nil, fmt.Errorf("auth_header %s: %w: the credential holds a control character, which a header cannot carry", h.Field, ErrBadRequest)
		}
		values[i] = v
	}
	return values, nil
}

// stripTokens removes the query parameters that carry credentials or the
// last event id from out's URL (a copy of r's).
func (s *Shaper) stripTokens(r *http.Request, out *http.Request) {
	if r.URL.RawQuery != "" {
		u := *r.URL
		u.RawQuery = StripQuery(u.RawQuery, s.stripQuery)
		out.URL = &u
	}
	if strings.Contains(out.RequestURI, "?") {
		// reverse_proxy logs the request it sends (the "uri" of its
		// lines, at warn level when a client leaves mid-stream) from
		// RequestURI, which would still hold the tokens.
		out.RequestURI = out.URL.RequestURI()
	}
}

// Owned returns the canonical names of the header fields the proxy sets.
func (s *Shaper) Owned() []string { return s.owned }

// StripQuery removes every parameter named in names from a raw query,
// leaving the other parameters byte for byte as they were.
func StripQuery(rawQuery string, names []string) string {
	var b strings.Builder
	rest := rawQuery
	changed := false
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, _, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(key); err == nil && slices.Contains(names, k) {
			changed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	if !changed {
		return rawQuery
	}
	return b.String()
}
