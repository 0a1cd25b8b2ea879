package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/http/httpguts"
)

// prepared returns a request with Caddy's replacer, as Caddy's server sets
// it up.
func prepared(t *testing.T, target string, header http.Header) (*http.Request, *caddy.Replacer) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, nil, &caddyhttp.Server{})
	return r, repl
}

func TestShapeSetsOwnedHeadersAndStripsTokens(t *testing.T) {
	s, err := NewShaper([]AuthHeader{
		{Field: "authorization", Value: "Bearer {http.request.uri.query.token}"},
		{Field: "X-Tenant", Value: "{http.request.cookie.tenant}"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, repl := prepared(t, "/events?a=1&token=s3cr%65t&b=x%20y&token=again", http.Header{
		"Authorization":   {"Bearer forged"},
		"X-Tenant":        {"forged"},
		"Cookie":          {"tenant=acme"},
		"Accept-Encoding": {"gzip"},
		"Accept":          {"text/html, text/event-stream;q=0.9"},
		"Last-Event-Id":   {"41"},
	})
	up, err := s.Shape(context.Background(), r, repl)
	if err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer s3cret,again" {
		t.Errorf("Authorization %q", got)
	}
	if got := up.Header.Values("X-Tenant"); len(got) != 1 || got[0] != "acme" {
		t.Errorf("X-Tenant %q", got)
	}
	if up.URL.RawQuery != "a=1&b=x%20y" {
		t.Errorf("upstream query %q", up.URL.RawQuery)
	}
	if up.Header.Get("Accept-Encoding") != "" || up.Header.Get("Last-Event-ID") != "41" {
		t.Errorf("header %v", up.Header)
	}
	// The client's request is untouched: Caddy's logs and placeholders read it.
	if r.Header.Get("Authorization") != "Bearer forged" || !strings.Contains(r.URL.RawQuery, "token=") {
		t.Error("client request modified")
	}
}

func TestShapeRefusesMissingCredentials(t *testing.T) {
	s, _ := NewShaper([]AuthHeader{{Field: "Authorization", Value: "Bearer {http.request.cookie.session}"}}, nil)
	for name, h := range map[string]http.Header{
		"no cookie":    {"Authorization": {"Bearer forged"}},
		"empty cookie": {"Cookie": {"session="}},
	} {
		r, repl := prepared(t, "/events", h)
		_, err := s.Shape(context.Background(), r, repl)
		if !errors.Is(err, ErrCredentials) {
			t.Errorf("%s: err %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "forged") {
			t.Errorf("%s: error leaks a credential: %v", name, err)
		}
	}
}

func TestShapeRefusesWhatNoHeaderCanCarry(t *testing.T) {
	s, _ := NewShaper([]AuthHeader{{Field: "X-Api-Key", Value: "{http.request.uri.query.t}"}}, []string{"lastEventId"})
	for _, target := range []string{
		"/events?t=a%0D%0AX-Injected:%201",
		"/events?t=SECRET%01",
		"/events?t=SECRET%7F",
		"/events?t=SECRET%00",
		"/events?t=ok&lastEventId=a%01b",
		"/events?t=ok&lastEventId=a%0Ab",
	} {
		r, repl := prepared(t, target, nil)
		_, err := s.Shape(context.Background(), r, repl)
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: err %v, want ErrBadRequest", target, err)
			continue
		}
		want := "auth_header X-Api-Key"
		if strings.Contains(target, "lastEventId") {
			want = "last_event_id_query lastEventId"
		}
		if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: error %q does not name %q, or shows the value", target, err, want)
		}
	}
	// A tab is allowed in a header value.
	r, repl := prepared(t, "/events?t=a%09b&lastEventId=7", nil)
	up, err := s.Shape(context.Background(), r, repl)
	if err != nil || up.Header.Get("X-Api-Key") != "a\tb" || up.Header.Get("Last-Event-ID") != "7" {
		t.Errorf("tab: %v %v", err, up)
	}
}

func TestShapeRemovesTokensFromTheRequestURIReverseProxyLogs(t *testing.T) {
	s, _ := NewShaper([]AuthHeader{{Field: "Authorization", Value: "Bearer {http.request.uri.query.token}"}}, []string{"lastEventId"})
	r, repl := prepared(t, "/a%2Fb/events?x=1&token=SECRET&lastEventId=3", nil)
	r.RequestURI = "/a%2Fb/events?x=1&token=SECRET&lastEventId=3"
	up, err := s.Shape(context.Background(), r, repl)
	if err != nil {
		t.Fatal(err)
	}
	if up.RequestURI != "/a%2Fb/events?x=1" || up.URL.RawQuery != "x=1" {
		t.Errorf("upstream RequestURI %q, query %q", up.RequestURI, up.URL.RawQuery)
	}
	if !strings.Contains(r.RequestURI, "SECRET") {
		t.Errorf("the client's request changed: %q", r.RequestURI)
	}
}

func TestNewShaperErrors(t *testing.T) {
	for _, tc := range []struct {
		h    AuthHeader
		want string
	}{
		{AuthHeader{Field: "Bad Field", Value: "x"}, `"Bad Field" is not a header field name`},
		{AuthHeader{Field: "Authorization", Value: " "}, "auth_header Authorization: a value is required"},
	} {
		if _, err := NewShaper([]AuthHeader{tc.h}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.h, err)
		}
	}
}

func TestStripQuery(t *testing.T) {
	for in, want := range map[string]string{
		"token=1":         "",
		"a=1&token=2":     "a=1",
		"to%6Ben=2&a=%2F": "a=%2F",
		"a=1&&b":          "a=1&&b",
		"tokens=1&token":  "tokens=1",
		"a=1;token=2":     "a=1;token=2",
	} {
		if got := StripQuery(in, []string{"token"}); got != want {
			t.Errorf("StripQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzShapeSendsOnlyValidHeadersAndNoToken shapes requests whose token
// and last event id query parameters, cookie and Last-Event-ID header come
// from the fuzzer, and checks what goes upstream: every header value is one
// Go's HTTP client sends (else the request is refused with ErrBadRequest or
// ErrCredentials), the credential is exactly the token, and no stripped
// parameter is left in the URL or in the RequestURI that reverse_proxy logs.
func FuzzShapeSendsOnlyValidHeadersAndNoToken(f *testing.F) {
	f.Add("a=1&token=SECRET&b=2", "s3ss10n", "")
	f.Add("token=a%01b", "x", "7")
	f.Add("lastEventId=a%7Fb&token=t", "x", "")
	f.Add("to%6Ben=x&token=y;z&lastEventId=&leid=9", "", "5")
	f.Add("token=%E2%82%AC&token=2&TOKEN=3", "v", "\t1")
	stripped := []string{"token", "lastEventId", "leid"}
	s, err := NewShaper([]AuthHeader{
		{Field: "X-Api-Key", Value: "{http.request.uri.query.token}"},
		{Field: "X-Session", Value: "s={http.request.cookie.session}"},
	}, []string{"lastEventId", "leid"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rawQuery, cookie, lastEventID string) {
		h := http.Header{"Accept": {"text/event-stream"}}
		if cookie != "" {
			h.Set("Cookie", "session="+cookie)
		}
		if lastEventID != "" {
			h.Set("Last-Event-ID", lastEventID)
		}
		for _, vv := range h {
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Skip() // Caddy's servers refuse such a request
				}
			}
		}
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/events", RawQuery: rawQuery},
			RequestURI: "/events?" + rawQuery, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"}
		repl := caddy.NewReplacer()
		r = caddyhttp.PrepareRequest(r, repl, nil, &caddyhttp.Server{})
		up, err := s.Shape(context.Background(), r, repl)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrCredentials) {
				t.Fatalf("error %v is neither a 400 nor a 401", err)
			}
			return
		}
		for k, vv := range up.Header {
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("upstream header %s: %q is no header value", k, v)
				}
			}
		}
		if q, _ := url.ParseQuery(rawQuery); up.Header.Get("X-Api-Key") != strings.Join(q["token"], ",") {
			t.Fatalf("X-Api-Key %q, token %q", up.Header.Get("X-Api-Key"), q["token"])
		}
		_, uriQuery, _ := strings.Cut(up.RequestURI, "?")
		for _, raw := range []string{up.URL.RawQuery, uriQuery} {
			for pair := range strings.SplitSeq(raw, "&") {
				key, _, _ := strings.Cut(pair, "=")
				if k, err := url.QueryUnescape(key); err == nil && slices.Contains(stripped, k) {
					t.Fatalf("parameter %q left in %q (RequestURI %q)", k, raw, up.RequestURI)
				}
			}
		}
	})
}
