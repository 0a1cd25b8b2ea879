package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
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
		MaxAge: 10 * time.Minute, AllowHeaders: []string{"X-Client"},
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
