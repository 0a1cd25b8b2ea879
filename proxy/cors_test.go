package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestCORSMatching(t *testing.T) {
	c, err := NewCORS(CORSConfig{Origins: []string{
		"https://App.Example.com", "https://*.example.org", "http://localhost:3000", "https://secure.example.net:443",
	}})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://app.example.com":      true,
		"http://app.example.com":       false, // scheme differs
		"https://app.example.com:8443": false, // port differs
		"https://evil-app.example.com": false,
		"https://app.example.com.evil": false,
		"https://a.example.org":        true,
		"https://a.b.example.org":      true,
		"https://example.org":          false, // the bare domain is not a subdomain
		"https://a.example.org:444":    false,
		"https://aexample.org":         false,
		"http://localhost:3000":        true,
		"http://localhost:3001":        false,
		"https://secure.example.net":   true, // default port normalised
		"null":                         false,
		"":                             false,
	} {
		if got := c.Allowed(origin); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", origin, got, want)
		}
	}
}

func TestCORSConfigErrorsNameTheValue(t *testing.T) {
	for _, tc := range []struct {
		cfg  CORSConfig
		want string
	}{
		{CORSConfig{Origins: []string{"*"}, Credentials: true}, `"*" cannot be combined with credentials`},
		{CORSConfig{Origins: []string{"example.com"}}, `origin "example.com"`},
		{CORSConfig{Origins: []string{"https://example.com/"}}, `origin "https://example.com/"`},
		{CORSConfig{Origins: []string{"https://a.*.example.com"}}, `origin "https://a.*.example.com"`},
		{CORSConfig{Origins: []string{"https://example.com:99999"}}, `invalid port "99999"`},
		{CORSConfig{Origins: []string{"https://u@example.com"}}, `origin "https://u@example.com"`},
		{CORSConfig{Origins: []string{"https://x.com"}, AllowHeaders: []string{"X Bad"}}, `allow_headers: "X Bad"`},
		{CORSConfig{Origins: []string{"https://x.com"}, ExposeHeaders: []string{"a:b"}}, `expose_headers: "a:b"`},
		{CORSConfig{}, "at least one origin"},
	} {
		_, err := NewCORS(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

func TestCORSApplyReplacesUpstreamFields(t *testing.T) {
	c, _ := NewCORS(CORSConfig{Origins: []string{"https://app.example.com"}, Credentials: true, ExposeHeaders: []string{"X-Seq"}})
	h := http.Header{
		"Access-Control-Allow-Origin":  {"*"},
		"Access-Control-Allow-Methods": {"POST"},
		"Vary":                         {"Accept-Encoding"},
	}
	c.Apply(h, "https://app.example.com")
	want := http.Header{
		"Access-Control-Allow-Origin":      {"https://app.example.com"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Expose-Headers":    {"X-Seq"},
		"Vary":                             {"Accept-Encoding", "Origin"},
	}
	if !equalHeader(h, want) {
		t.Errorf("got %v, want %v", h, want)
	}

	h = http.Header{"Access-Control-Allow-Origin": {"*"}}
	c.Apply(h, "https://evil.example.com")
	if !equalHeader(h, http.Header{"Vary": {"Origin"}}) {
		t.Errorf("disallowed origin got %v", h)
	}
}

func TestCORSStarWithoutCredentials(t *testing.T) {
	c, _ := NewCORS(CORSConfig{Origins: []string{"*"}})
	h := http.Header{}
	c.Apply(h, "https://anyone.example")
	if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" || h.Get("Vary") != "Origin" {
		t.Errorf("got %v", h)
	}
}

func TestCORSPreflight(t *testing.T) {
	c, _ := NewCORS(CORSConfig{
		Origins: []string{"https://app.example.com"}, Credentials: true,
		MaxAge: caddy.Duration(10 * time.Minute), AllowHeaders: []string{"X-Client"},
	})
	h := http.Header{}
	c.Preflight(h, "https://app.example.com")
	want := http.Header{
		"Access-Control-Allow-Origin":      {"https://app.example.com"},
		"Access-Control-Allow-Credentials": {"true"},
		"Access-Control-Allow-Methods":     {"GET, HEAD"},
		"Access-Control-Allow-Headers":     {"Last-Event-ID, Cache-Control, X-Client"},
		"Access-Control-Max-Age":           {"600"},
		"Vary":                             {"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"},
	}
	if !equalHeader(h, want) {
		t.Errorf("got %v\nwant %v", h, want)
	}
	h = http.Header{}
	c.Preflight(h, "https://other.example.com")
	if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("disallowed preflight got %v", h)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

func TestCleanHeadersKeepsContentType(t *testing.T) {
	h := http.Header{"Connection": {"Content-Type, X-A", "x-b"}, "Content-Type": {"text/event-stream"}, "X-A": {"1"}, "X-B": {"2"}}
	CleanHeaders(h)
	if !equalHeader(h, http.Header{"Content-Type": {"text/event-stream"}}) {
		t.Errorf("got %v", h)
	}
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                 true,
		"TEXT/Event-Stream ; charset=utf-8": true,
		" text/event-stream;x=y":            true,
		"text/event-streams":                false,
		"text/plain":                        false,
		"":                                  false,
	} {
		if IsEventStream(ct) != want {
			t.Errorf("IsEventStream(%q) != %v", ct, want)
		}
	}
}

// originModel is a plain reading of what an allowed origin is: pattern is
// "*", or origin is pattern (scheme and host in any case, the scheme's
// default port written or not), or pattern is scheme://*.domain[:port] and
// origin's host is a subdomain of domain, at any depth. An origin is
// scheme://host[:port] and nothing else.
func originModel(pattern, origin string) bool {
	if pattern == "*" {
		return true
	}
	split := func(s string) (scheme, host, port string, ok bool) {
		s = strings.ToLower(s)
		scheme, rest, found := strings.Cut(s, "://")
		if !found || strings.ContainsAny(rest, "/?#@") {
			return "", "", "", false
		}
		host, port = rest, ""
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
			host, port = rest[:i], rest[i+1:]
		}
		if port == map[string]string{"http": "80", "https": "443"}[scheme] {
			port = ""
		}
		return scheme, host, port, host != ""
	}
	ps, ph, pp, ok1 := split(pattern)
	os, oh, op, ok2 := split(origin)
	if !ok1 || !ok2 || ps != os || pp != op {
		return false
	}
	if domain, ok := strings.CutPrefix(ph, "*."); ok {
		label, found := strings.CutSuffix(oh, "."+domain)
		return found && label != ""
	}
	return ph == oh
}

// FuzzCORSNeverReflectsADisallowedOrigin checks, for a configured origin
// pattern and a request's Origin, that the policy's answer (actual request
// and preflight) reflects only the request's own origin, and only when the
// model allows it; that "*" is only sent for a "*" policy without
// credentials; that every answer has Vary: Origin; and that the upstream's
// Access-Control-* fields never survive.
func FuzzCORSNeverReflectsADisallowedOrigin(f *testing.F) {
	f.Add("https://*.example.com", "https://a.b.example.com", false)
	f.Add("https://*.example.com", "https://example.com", true)
	f.Add("https://*.example.com", "https://evil.com/.example.com", true)
	f.Add("https://*.example.com:8443", "https://a.example.com:8443", true)
	f.Add("http://localhost:3000", "HTTP://LOCALHOST:3000", false)
	f.Add("https://app.example.com", "https://app.example.com:443", true)
	f.Add("https://app.example.com", "https://app.example.com.evil.com", true)
	f.Add("*", "null", false)
	f.Fuzz(func(t *testing.T, pattern, origin string, credentials bool) {
		c, err := NewCORS(CORSConfig{Origins: []string{pattern}, Credentials: credentials, ExposeHeaders: []string{"X-E"}})
		if err != nil {
			t.Skip()
		}
		for _, preflight := range []bool{false, true} {
			h := http.Header{
				"Access-Control-Allow-Origin":      {"https://upstream.example"},
				"Access-Control-Allow-Credentials": {"true"},
			}
			if preflight {
				h = http.Header{}
				c.Preflight(h, origin)
			} else {
				c.Apply(h, origin)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Fatalf("no Vary: Origin in %v", h)
			}
			acao, set := h["Access-Control-Allow-Origin"]
			if !set {
				for k := range h {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Fatalf("pattern %q, origin %q: disallowed, but %s is set", pattern, origin, k)
					}
				}
				continue
			}
			if len(acao) != 1 {
				t.Fatalf("Access-Control-Allow-Origin %q", acao)
			}
			switch {
			case acao[0] == "*":
				if pattern != "*" || credentials {
					t.Fatalf("pattern %q (credentials %v) answered *", pattern, credentials)
				}
			case acao[0] != origin:
				t.Fatalf("pattern %q, origin %q: reflected %q", pattern, origin, acao[0])
			case !originModel(pattern, origin):
				t.Fatalf("pattern %q allowed origin %q, which it does not cover", pattern, origin)
			}
			if credentials != (h.Get("Access-Control-Allow-Credentials") == "true") {
				t.Fatalf("credentials %v, answer %v", credentials, h)
			}
		}
	})
}
