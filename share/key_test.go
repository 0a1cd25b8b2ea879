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
		return DefaultKey(r, []string{"Authorization"})
	}
	base := key("/s?a=1&b=2", "Authorization", "Bearer x")
	for name, tc := range map[string]struct {
		other string
		same  bool
	}{
		"query order":   {key("/s?b=2&a=1", "Authorization", "Bearer x"), true},
		"encoding":      {key("/s?a=%31&b=2", "Authorization", "Bearer x"), true},
		"last event id": {key("/s?a=1&b=2", "Authorization", "Bearer x", "Last-Event-ID", "9"), true},
		"credentials":   {key("/s?a=1&b=2", "Authorization", "Bearer y"), false},
		"no credential": {key("/s?a=1&b=2"), false},
		// The client's own credentials count too, owned by the proxy or not.
		"cookie":      {key("/s?a=1&b=2", "Authorization", "Bearer x", "Cookie", "session=u1"), false},
		"path":        {key("/t?a=1&b=2", "Authorization", "Bearer x"), false},
		"query value": {key("/s?a=1&b=3", "Authorization", "Bearer x"), false},
	} {
		if (tc.other == base) != tc.same {
			t.Errorf("%s: same key = %v, want %v", name, tc.other == base, tc.same)
		}
	}
	if CustomKey("/room/1") == CustomKey("/room/2") || CustomKey("x") == base {
		t.Error("custom keys collide")
	}
}

func TestDefaultKeyCountsTheClientsOwnCredentials(t *testing.T) {
	key := func(cookie string) string {
		r := httptest.NewRequest("GET", "/s", nil)
		r.Header.Set("Cookie", cookie)
		return DefaultKey(r, nil)
	}
	if key("session=alice") == key("session=bob") {
		t.Error("clients with different cookies share a stream")
	}
	if a, b := key("session=alice"), key("session=alice"); a != b {
		t.Error("the same client does not share its own stream")
	}
}
