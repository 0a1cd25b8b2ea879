package share

import (
	"net/http/httptest"
	"testing"
)

func TestDefaultKey(t *testing.T) {
	key := func(target string, header ...string) string {
		r := httptest.NewRequest("GET", target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return DefaultKey(r, []string{"Authorization"}, []string{"Origin"})
	}
	base := key("/s?a=1&b=2", "Authorization", "Bearer x")
	for name, tc := range map[string]struct {
		other string
		same  bool
	}{
		"query order":   {key("/s?b=2&a=1", "Authorization", "Bearer x"), true},
		"last event id": {key("/s?a=1&b=2", "Authorization", "Bearer x", "Last-Event-ID", "9"), true},
		"credentials":   {key("/s?a=1&b=2", "Authorization", "Bearer y"), false},
		"no credential": {key("/s?a=1&b=2"), false},
		// The client's own credentials count too, owned by the proxy or not.
		"cookie":      {key("/s?a=1&b=2", "Authorization", "Bearer x", "Cookie", "session=u1"), false},
		"path":        {key("/t?a=1&b=2", "Authorization", "Bearer x"), false},
		"query value": {key("/s?a=1&b=3", "Authorization", "Bearer x"), false},
		// The upstream sees the bytes as they are: a re-encoding is
		// another request.
		"encoding": {key("/s?a=%31&b=2", "Authorization", "Bearer x"), false},
		"origin":   {key("/s?a=1&b=2", "Authorization", "Bearer x", "Origin", "https://a.example"), false},
	} {
		if (tc.other == base) != tc.same {
			t.Errorf("%s: same key = %v, want %v", name, tc.other == base, tc.same)
		}
	}
}

// The path counts as it goes to the upstream, escaped: %2F is not a slash.
func TestDefaultKeyUsesTheEscapedPath(t *testing.T) {
	key := func(target string) string {
		return DefaultKey(httptest.NewRequest("GET", target, nil), nil, nil)
	}
	for _, pair := range [][2]string{
		{"/echo/z%2Fy", "/echo/z/y"},
		{"/echo/%7A", "/echo/z"},
		{"/a%00b", "/a"},
	} {
		if key(pair[0]) == key(pair[1]) {
			t.Errorf("%s and %s share a key", pair[0], pair[1])
		}
	}
}

// Queries that a parser might read alike, or differently, never share:
// only plain, distinct names are put in order.
func TestDefaultKeyQuery(t *testing.T) {
	key := func(target string) string {
		return DefaultKey(httptest.NewRequest("GET", target, nil), nil, nil)
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"/s?a=1&b=2&c=3", "/s?c=3&a=1&b=2", true},
		{"/s?x=1;evil", "/s", false},        // Go's parser drops the pair with ";"
		{"/s?t=%zz", "/s", false},           // and the pair with a bad escape
		{"/s?a=1&a=2", "/s?a=2&a=1", false}, // the first value may be the one read
		{"/s?A=1&a=2", "/s?a=2&A=1", false}, // alike to a backend that ignores case
		{"/s?a.b=1&a_b=2", "/s?a_b=2&a.b=1", false},
		{"/s?a+b=1&c=2", "/s?c=2&a+b=1", false},
		{"/s?a", "/s?a=", false},
		{"/s?", "/s", true}, // the same request line upstream
		{"/s?b=2&a=1", "/s?a=1&b=2", true},
	} {
		if got := key(tc.a) == key(tc.b); got != tc.same {
			t.Errorf("%s and %s: same key = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
}

func TestDefaultKeyCountsTheClientsOwnCredentials(t *testing.T) {
	key := func(cookie string) string {
		r := httptest.NewRequest("GET", "/s", nil)
		r.Header.Set("Cookie", cookie)
		return DefaultKey(r, nil, nil)
	}
	if key("session=alice") == key("session=bob") {
		t.Error("clients with different cookies share a stream")
	}
	if a, b := key("session=alice"), key("session=alice"); a != b {
		t.Error("the same client does not share its own stream")
	}
}

func TestCustomKey(t *testing.T) {
	r := httptest.NewRequest("GET", "/room/1", nil)
	o := httptest.NewRequest("GET", "/room/1", nil)
	o.Header.Set("Origin", "https://a.example")
	if CustomKey("/room/1", r, nil) == CustomKey("/room/2", r, nil) {
		t.Error("custom keys collide")
	}
	if CustomKey("/room/1", r, nil) != CustomKey("/room/1", o, nil) {
		t.Error("a field the key does not cover splits the stream")
	}
	if CustomKey("/room/1", r, []string{"Origin"}) == CustomKey("/room/1", o, []string{"Origin"}) {
		t.Error("different origins share when the key covers Origin")
	}
	if CustomKey("x", r, nil) == DefaultKey(r, nil, nil) {
		t.Error("custom and default keys collide")
	}
}
