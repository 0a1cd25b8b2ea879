package share

import (
	"bufio"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzKey checks the default share key against a model of what makes two
// upstream requests the same, on requests parsed as Caddy's server parses
// them: a request and a variant of it (one byte of its target, cookie,
// authorization or origin replaced, inserted or deleted, or two query
// parameters swapped) share a key only if no backend could tell them
// apart, and identical requests always share. No key holds a credential in
// clear.
//
//	go test -run x -fuzz FuzzKey ./share/
func FuzzKey(f *testing.F) {
	for _, s := range []struct {
		target, cookie, auth, origin string
	}{
		{"/events", "", "", ""},
		{"/echo/z%2Fy", "", "", ""},
		{"/echo/z/y", "", "", ""},
		{"/echo/%7A", "session=alice", "", "https://a.example"},
		{"/s?a=1&b=2", "session=bob", "Bearer token-1", ""},
		{"/s?b=2&a=1&c=3", "", "", "https://b.example"},
		{"/s?a=1&a=2", "", "", ""},
		{"/s?A=1&a=2", "", "", ""},
		{"/s?a.b=1&a_b=2", "", "", ""},
		{"/s?x=1;evil&y=2", "", "", ""},
		{"/s?t=%zz&u=1", "", "", ""},
		{"/s?a+b=1&c=%31", "", "", ""},
		{"/s?", "", "", ""},
		{"*", "", "", ""},
		{"/a%00b?q", "a=b; c=d", "Basic dXNlcjpwYXNz", "null"},
	} {
		for _, op := range []byte{0, 1, 2, 3, 4, 0x11, 0x22, 0x33} {
			f.Add(s.target, s.cookie, s.auth, s.origin, op, uint16(3), byte('%'))
		}
	}
	f.Fuzz(func(t *testing.T, target, cookie, auth, origin string, op byte, pos uint16, b byte) {
		parts := [4]string{target, cookie, auth, origin}
		a, ok := fuzzRequest(parts)
		if !ok {
			return
		}
		varied := parts
		field := int(op>>4) % len(parts)
		varied[field] = mutate(parts[field], op&0x0f, int(pos), b)
		v, ok := fuzzRequest(varied)
		if !ok {
			return
		}
		owned := []string{"Authorization"}
		vary := []string{"Origin"}
		ka, kv := DefaultKey(a, owned, vary), DefaultKey(v, owned, vary)

		again, _ := fuzzRequest(parts)
		if DefaultKey(again, owned, vary) != ka {
			t.Fatalf("the same request gives two keys: %q", parts)
		}
		for _, secret := range []string{cookie, auth} {
			if len(secret) >= 4 && strings.Trim(secret, "0123456789abcdef:") != "" && strings.Contains(ka, secret) {
				t.Fatalf("key %q holds the credential %q", ka, secret)
			}
		}
		same := sameToEveryBackend(a, v)
		if ka == kv && !same {
			t.Fatalf("different requests share a key:\n%q %q %q %q\n%q %q %q %q", a.RequestURI, a.Header["Cookie"], a.Header["Authorization"], a.Header["Origin"],
				v.RequestURI, v.Header["Cookie"], v.Header["Authorization"], v.Header["Origin"])
		}
		if ka != kv && same && op&0x0f == 4 {
			t.Fatalf("swapping two plain, distinct parameters split the stream: %q and %q", a.RequestURI, v.RequestURI)
		}
	})
}

// fuzzRequest parses a request line with the target as net/http's server
// does, and sets the header fields as given (even values the server would
// refuse: the key must cope with any bytes).
func fuzzRequest(p [4]string) (*http.Request, bool) {
	if strings.ContainsAny(p[0], " \r\n") {
		return nil, false
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + p[0] + " HTTP/1.1\r\nHost: h.example\r\n\r\n")))
	if err != nil {
		return nil, false
	}
	for i, f := range []string{"Cookie", "Authorization", "Origin"} {
		if p[i+1] != "" {
			r.Header[f] = []string{p[i+1]}
		}
	}
	return r, true
}

// mutate changes s at pos: op 1 replaces a byte with b, 2 inserts b, 3
// deletes a byte, 4 swaps the query parameter at pos with the next one;
// anything else leaves s as it is.
func mutate(s string, op byte, pos int, b byte) string {
	switch op {
	case 1, 3:
		if len(s) == 0 {
			return s
		}
		pos %= len(s)
		if op == 1 {
			return s[:pos] + string(b) + s[pos+1:]
		}
		return s[:pos] + s[pos+1:]
	case 2:
		pos %= len(s) + 1
		return s[:pos] + string(b) + s[pos:]
	case 4:
		path, query, ok := strings.Cut(s, "?")
		if !ok {
			return s
		}
		pairs := strings.Split(query, "&")
		if len(pairs) < 2 {
			return s
		}
		pos %= len(pairs) - 1
		pairs[pos], pairs[pos+1] = pairs[pos+1], pairs[pos]
		return path + "?" + strings.Join(pairs, "&")
	}
	return s
}

// sameToEveryBackend is the model: two GET requests to the same host are
// the same to every backend when their request targets are the same on the
// wire, their credential and Origin fields are equal, and their queries
// are equal byte for byte or differ only in the order of "&"-separated
// parameters whose names are plain and distinct, even to a backend that
// ignores their case and reads "." and "-" as "_".
func sameToEveryBackend(a, b *http.Request) bool {
	for _, f := range []string{"Cookie", "Authorization", "Origin"} {
		if !slices.Equal(a.Header.Values(f), b.Header.Values(f)) {
			return false
		}
	}
	if a.URL.Opaque != b.URL.Opaque || a.URL.EscapedPath() != b.URL.EscapedPath() {
		return false
	}
	qa, qb := a.URL.RawQuery, b.URL.RawQuery
	if qa == qb {
		return true
	}
	pa, oka := plainParams(qa)
	pb, okb := plainParams(qb)
	if !oka || !okb {
		return false
	}
	slices.Sort(pa)
	slices.Sort(pb)
	return slices.Equal(pa, pb)
}

var plainParam = regexp.MustCompile(`^[A-Za-z0-9._~-]+(=|$)`)

// plainParams splits a query into its parameters when every name is plain
// and no two are alike.
func plainParams(q string) ([]string, bool) {
	if strings.Contains(q, ";") {
		return nil, false
	}
	params := strings.Split(q, "&")
	names := map[string]bool{}
	for _, p := range params {
		m := plainParam.FindString(p)
		if m == "" {
			return nil, false
		}
		name := strings.NewReplacer(".", "_", "-", "_").Replace(strings.ToLower(strings.TrimSuffix(m, "=")))
		if names[name] {
			return nil, false
		}
		names[name] = true
	}
	return params, true
}
