package proxy

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// revisitFor shapes a client request for target with the client's cookie
// field and returns its upstream request and Revisit.
func revisitFor(t *testing.T, s *Shaper, target, cookie string) (*http.Request, *Revisit) {
	t.Helper()
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	r, repl := prepared(t, target, h)
	up, err := s.Shape(context.Background(), r, repl)
	if err != nil {
		t.Fatal(err)
	}
	return up, s.Revisit(r, repl)
}

func mustShaper(t *testing.T, headers ...AuthHeader) *Shaper {
	t.Helper()
	s, err := NewShaper(headers, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func setCookies(lines ...string) http.Header {
	return http.Header{"Set-Cookie": lines}
}

func TestRevisitSendsTheCookiesTheUpstreamSet(t *testing.T) {
	cases := []struct {
		name, target, client string
		set                  []string
		want                 string
	}{
		{"new cookie after the client's", "https://a.example.com/events", "theme=dark",
			[]string{"session=s1; Path=/; HttpOnly"}, "theme=dark; session=s1"},
		{"same name replaces the client's", "https://a.example.com/events", "session=old; theme=dark",
			[]string{"session=new"}, "theme=dark; session=new"},
		{"deleted by Max-Age", "https://a.example.com/events", "session=old; theme=dark",
			[]string{"session=; Max-Age=0"}, "theme=dark"},
		{"deleted by a past Expires", "https://a.example.com/events", "session=old",
			[]string{"session=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"}, ""},
		{"another path neither sent nor replacing", "https://a.example.com/events", "session=old",
			[]string{"session=other; Path=/admin"}, "session=old"},
		{"a parent domain is kept", "https://a.example.com/events", "",
			[]string{"lb=7; Domain=example.com"}, "lb=7"},
		{"another domain is refused", "https://a.example.com/events", "",
			[]string{"x=1; Domain=other.org"}, ""},
		{"a public suffix is refused", "https://a.example.co.uk/events", "",
			[]string{"x=1; Domain=co.uk"}, ""},
		{"secure only over TLS", "http://a.example.com/events", "",
			[]string{"s=1; Secure", "p=2"}, "p=2"},
		{"a value the client sent stays byte for byte", "https://a.example.com/events", `q="a b"; odd=x,y`,
			[]string{"n=1"}, `q="a b"; odd=x,y; n=1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up, rv := revisitFor(t, mustShaper(t), c.target, c.client)
			rv.Store(setCookies(c.set...))
			if err := rv.Prepare(up); err != nil {
				t.Fatal(err)
			}
			if got := up.Header.Values("Cookie"); c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0] != c.want) {
				t.Errorf("Cookie %q, want %q", got, c.want)
			}
		})
	}
}

func TestRevisitLeavesTheRequestAloneWithoutSetCookie(t *testing.T) {
	up, rv := revisitFor(t, mustShaper(t), "https://a.example.com/events", "a=1;b=2")
	rv.Store(http.Header{"Content-Type": {"text/event-stream"}})
	if err := rv.Prepare(up); err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Values("Cookie"); len(got) != 1 || got[0] != "a=1;b=2" {
		t.Errorf("Cookie %q", got)
	}
	var none *Revisit // a stream without one
	none.Store(setCookies("a=2"))
	if err := none.Prepare(up); err != nil {
		t.Fatal(err)
	}
}

func TestRevisitReexpandsAuthHeadersFromTheRotatedCookie(t *testing.T) {
	s := mustShaper(t,
		AuthHeader{Field: "Authorization", Value: "Bearer {http.request.cookie.session}"},
		AuthHeader{Field: "X-Key", Value: "{http.request.uri.query.key}"},
	)
	up, rv := revisitFor(t, s, "https://a.example.com/events?key=k1", "session=old")
	if up.URL.RawQuery != "" {
		t.Fatalf("query %q reached the upstream URL", up.URL.RawQuery)
	}
	rv.Store(setCookies("session=rotated; Path=/; Secure; HttpOnly"))
	if err := rv.Prepare(up); err != nil {
		t.Fatal(err)
	}
	// The query parameter, gone from the upstream URL, still fills X-Key.
	if got, key := up.Header.Values("Authorization"), up.Header.Values("X-Key"); len(got) != 1 || got[0] != "Bearer rotated" || len(key) != 1 || key[0] != "k1" {
		t.Errorf("Authorization %q, X-Key %q", got, key)
	}
	if got := up.Header.Get("Cookie"); got != "session=rotated" {
		t.Errorf("Cookie %q", got)
	}

	// Deleted: the proxy would answer the browser's reconnect 401.
	rv.Store(setCookies("session=; Max-Age=0"))
	if err := rv.Prepare(up); !errors.Is(err, ErrCredentials) {
		t.Fatalf("Prepare = %v, want ErrCredentials", err)
	}
}

func TestRevisitOwnedCookieFieldComesFromTheTemplate(t *testing.T) {
	s := mustShaper(t, AuthHeader{Field: "Cookie", Value: "sid={http.request.cookie.sid}"})
	up, rv := revisitFor(t, s, "https://a.example.com/events", "sid=1; tracking=x")
	rv.Store(setCookies("sid=2", "other=3"))
	if err := rv.Prepare(up); err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Values("Cookie"); len(got) != 1 || got[0] != "sid=2" {
		t.Errorf("Cookie %q, want only the template's", got)
	}
}

func TestRevisitsOfTwoClientsKeepTheirCookiesApart(t *testing.T) {
	s := mustShaper(t)
	up1, rv1 := revisitFor(t, s, "https://a.example.com/events", "user=1")
	up2, rv2 := revisitFor(t, s, "https://a.example.com/events", "user=2")
	rv1.Store(setCookies("session=for-1"))
	rv2.Store(setCookies("other=x"))
	if err := rv1.Prepare(up1); err != nil {
		t.Fatal(err)
	}
	if err := rv2.Prepare(up2); err != nil {
		t.Fatal(err)
	}
	if got1, got2 := up1.Header.Get("Cookie"), up2.Header.Get("Cookie"); got1 != "user=1; session=for-1" || got2 != "user=2; other=x" {
		t.Errorf("Cookie %q and %q", got1, got2)
	}
}

func TestRevisitOfACrossSiteRequestKeepsNoSameSiteCookies(t *testing.T) {
	s := mustShaper(t)
	r, repl := prepared(t, "https://a.example.com/events", http.Header{"Sec-Fetch-Site": {"cross-site"}})
	up, err := s.Shape(context.Background(), r, repl)
	if err != nil {
		t.Fatal(err)
	}
	rv := s.Revisit(r, repl)
	rv.Store(setCookies("lax=1; SameSite=Lax", "strict=2; SameSite=Strict", "none=3; SameSite=None; Secure"))
	if err := rv.Prepare(up); err != nil {
		t.Fatal(err)
	}
	if got := up.Header.Get("Cookie"); got != "none=3" {
		t.Errorf("Cookie %q, want only the SameSite=None one", got)
	}
}
