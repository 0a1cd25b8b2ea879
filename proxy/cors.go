package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// CORSConfig is the cross-origin policy of a stream, as configured: the
// JSON form of sse_proxy's "cors" (its field comments are the JSON docs).
type CORSConfig struct {
	// Allowed origins: exact origins ("https://app.example.com"), wildcard
	// subdomains ("https://*.example.com", any depth, not the bare domain),
	// or "*" (not with credentials).
	Origins []string `json:"origins,omitempty"`
	// Allow credentialed requests (EventSource withCredentials, cookies).
	Credentials bool `json:"credentials,omitempty"`
	// How long browsers may cache a preflight answer.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// Request fields allowed in addition to Last-Event-ID and Cache-Control.
	AllowHeaders []string `json:"allow_headers,omitempty"`
	// Response fields that scripts may read.
	ExposeHeaders []string `json:"expose_headers,omitempty"`
}

// CORS is a compiled CORS policy. The proxy owns CORS for the responses it
// handles: whatever Access-Control-* fields the upstream sent are replaced.
// A CORS value is read-only after NewCORS and safe for concurrent use.
type CORS struct {
	any         bool                // "*" configured
	exact       map[string]struct{} // normalised exact origins
	wildcards   []wildcardOrigin
	credentials bool
	// Precomputed field values: no per-request formatting.
	allowHeaders  []string
	exposeHeaders []string
	maxAge        []string
}

type wildcardOrigin struct {
	scheme string
	suffix string // ".example.com"
	port   string // "" for the scheme's default
}

// Values reused for every response. Full slices (len == cap), so an append
// by other code copies them.
var (
	trueValue       = []string{"true"}
	starValue       = []string{"*"}
	preflightMethod = []string{"GET, HEAD"}
)

// NewCORS compiles and validates a policy. Its errors name the offending
// value, so they read well in `caddy validate` output.
func NewCORS(cfg CORSConfig) (*CORS, error) {
	if len(cfg.Origins) == 0 {
		return nil, fmt.Errorf("cors: at least one origin is required")
	}
	c := &CORS{exact: make(map[string]struct{}), credentials: cfg.Credentials}
	for _, o := range cfg.Origins {
		if o == "*" {
			if cfg.Credentials {
				return nil, fmt.Errorf("cors: origin \"*\" cannot be combined with credentials: browsers reject it; list the allowed origins instead")
			}
			c.any = true
			continue
		}
		scheme, host, port, err := ParseOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("cors: origin %q: %v", o, err)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			c.wildcards = append(c.wildcards, wildcardOrigin{scheme: scheme, suffix: "." + rest, port: port})
			continue
		}
		c.exact[serializeOrigin(scheme, host, port)] = struct{}{}
	}
	maxAge := time.Duration(cfg.MaxAge)
	if maxAge < 0 {
		return nil, fmt.Errorf("cors: max_age %s is negative", maxAge)
	}
	if maxAge > 0 {
		c.maxAge = []string{strconv.FormatInt(int64(maxAge/time.Second), 10)}
	}
	allow := append([]string{"Last-Event-ID", "Cache-Control"}, cfg.AllowHeaders...)
	for _, f := range allow {
		if !validFieldName(f) {
			return nil, fmt.Errorf("cors: allow_headers: %q is not a header field name", f)
		}
	}
	c.allowHeaders = []string{strings.Join(allow, ", ")}
	for _, f := range cfg.ExposeHeaders {
		if !validFieldName(f) {
			return nil, fmt.Errorf("cors: expose_headers: %q is not a header field name", f)
		}
	}
	if len(cfg.ExposeHeaders) > 0 {
		c.exposeHeaders = []string{strings.Join(cfg.ExposeHeaders, ", ")}
	}
	return c, nil
}

// ParseOrigin checks that s is a serialized origin, scheme://host[:port],
// and returns its parts in lower case, without a default port. The host may
// start with "*." (a wildcard subdomain pattern).
func ParseOrigin(s string) (scheme, host, port string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return "", "", "", fmt.Errorf("want scheme://host[:port]")
	}
	scheme = strings.ToLower(scheme)
	for i, r := range scheme {
		if !(r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return "", "", "", fmt.Errorf("invalid scheme %q", scheme)
		}
	}
	if i := strings.IndexAny(rest, "/?#@"); i >= 0 {
		return "", "", "", fmt.Errorf("an origin has no path, query, fragment or user info (%q); browsers send e.g. https://app.example.com", rest[i:])
	}
	host = strings.ToLower(rest)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host, port = host[:i], host[i+1:]
		if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
			return "", "", "", fmt.Errorf("invalid port %q", port)
		}
	}
	if host == "" {
		return "", "", "", fmt.Errorf("missing host")
	}
	check := strings.TrimPrefix(host, "*.")
	if check == "" || strings.ContainsAny(check, "* \t,") {
		return "", "", "", fmt.Errorf("invalid host %q (a wildcard may only be the first label, as in https://*.example.com)", host)
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	return scheme, host, port, nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

func serializeOrigin(scheme, host, port string) string {
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// Allowed reports whether a request's Origin value may read the response.
func (c *CORS) Allowed(origin string) bool {
	if origin == "" {
		return false
	}
	if c.any {
		return true
	}
	origin = strings.ToLower(origin)
	if _, ok := c.exact[origin]; ok {
		return true
	}
	if len(c.wildcards) == 0 {
		return false
	}
	scheme, host, port, err := ParseOrigin(origin)
	if err != nil {
		return false
	}
	for _, w := range c.wildcards {
		if w.scheme == scheme && w.port == port && len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			return true
		}
	}
	return false
}

// Apply replaces any Access-Control-* fields in h with this policy's answer
// for origin. Vary: Origin is always added, so a cache never hands one
// origin's answer to another.
func (c *CORS) Apply(h http.Header, origin string) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
	addVary(h, "Origin")
	if !c.Allowed(origin) {
		return
	}
	c.allowOrigin(h, origin)
	if c.exposeHeaders != nil {
		h["Access-Control-Expose-Headers"] = c.exposeHeaders
	}
}

func (c *CORS) allowOrigin(h http.Header, origin string) {
	if c.any && !c.credentials {
		h["Access-Control-Allow-Origin"] = starValue
	} else {
		h["Access-Control-Allow-Origin"] = []string{origin}
	}
	if c.credentials {
		h["Access-Control-Allow-Credentials"] = trueValue
	}
}

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
}

// Preflight fills h with the answer to a preflight request from origin. The
// caller sends it with status 204; a disallowed origin gets no CORS fields,
// which makes the browser refuse the actual request.
func (c *CORS) Preflight(h http.Header, origin string) {
	addVary(h, "Origin")
	addVary(h, "Access-Control-Request-Method")
	addVary(h, "Access-Control-Request-Headers")
	if !c.Allowed(origin) {
		return
	}
	c.allowOrigin(h, origin)
	h["Access-Control-Allow-Methods"] = preflightMethod
	h["Access-Control-Allow-Headers"] = c.allowHeaders
	if c.maxAge != nil {
		h["Access-Control-Max-Age"] = c.maxAge
	}
}
