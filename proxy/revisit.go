package proxy

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/publicsuffix"
)

// Revisit makes each request of a reconnect what the browser's own
// reconnect would have been: it keeps the cookies the upstream set (in a
// cookie jar, with their path, domain, expiry and deletion rules), sends
// them with the client's own cookies, and expands the auth_header values
// that read cookies again from them.
//
// A Revisit belongs to one client stream, or to one shared upstream
// request: nothing it keeps reaches another stream's request. Its methods
// are safe for concurrent use.
type Revisit struct {
	shaper *Shaper
	// site is the URL the browser asked for (scheme, host and path, before
	// any rewrite): the jar decides by it, as the browser's store would.
	site *url.URL
	// client is the client's Cookie field, as sent.
	client []string
	// crossSite: the browser said the request is cross-site
	// (Sec-Fetch-Site), where it neither keeps nor sends SameSite=Lax or
	// Strict cookies.
	crossSite bool
	// known holds the values of the placeholders in the auth_header values
	// other than cookies, as the client's request expanded them; nil when
	// no auth_header value reads a cookie (then none changes).
	known map[string]knownValue

	mu sync.Mutex // guards jar and shadow; held across no I/O; taken with no other lock held, and takes none
	// jar holds the upstream's cookies; nil until the first Set-Cookie.
	jar *cookiejar.Jar
	// shadow names the cookies the upstream set for site: the client's
	// cookies of those names are replaced by the jar's (or, deleted or
	// expired there, not sent at all), as in the browser's store.
	shadow map[string]bool
}

type knownValue struct {
	v  any
	ok bool
}

// cookieKeys are the placeholders that read the client's cookies.
const (
	cookieKeyPrefix = "http.request.cookie."
	cookieHeaderKey = "http.request.header.cookie"
)

func readsCookie(key string) bool {
	return strings.HasPrefix(key, cookieKeyPrefix) || strings.EqualFold(key, cookieHeaderKey)
}

// Revisit returns the Revisit for the stream of client request r, whose
// upstream request Shape made with repl. It must be called while r is
// being served: it records the placeholder values the auth_header values
// read, other than cookies, so that it never reads r again.
func (s *Shaper) Revisit(r *http.Request, repl *caddy.Replacer) *Revisit {
	rv := &Revisit{
		shaper:    s,
		client:    slices.Clone(r.Header.Values("Cookie")),
		crossSite: r.Header.Get("Sec-Fetch-Site") == "cross-site",
	}
	path := r.URL.Path
	if or, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && or.URL != nil {
		path = or.URL.Path
	}
	rv.site = &url.URL{Scheme: "http", Host: r.Host, Path: path}
	if r.TLS != nil {
		rv.site.Scheme = "https"
	}
	if len(s.headers) == 0 {
		return rv
	}
	if repl == nil {
		repl = caddy.NewReplacer()
	}
	known := map[string]knownValue{}
	cookies := false
	rec := caddy.NewReplacer()
	rec.Map(func(key string) (any, bool) {
		if readsCookie(key) {
			cookies = true
			return "", true
		}
		v, ok := repl.Get(key)
		known[key] = knownValue{v, ok}
		return v, ok
	})
	for _, h := range s.headers {
		rec.ReplaceKnown(h.Value, "")
	}
	if cookies {
		rv.known = known
	}
	return rv
}

// Store keeps the cookies an upstream answer sets (its Set-Cookie fields).
func (rv *Revisit) Store(h http.Header) {
	if rv == nil || len(h["Set-Cookie"]) == 0 {
		return
	}
	set := (&http.Response{Header: h}).Cookies()
	if rv.crossSite {
		set = slices.DeleteFunc(set, func(c *http.Cookie) bool {
			return c.SameSite == http.SameSiteLaxMode || c.SameSite == http.SameSiteStrictMode
		})
	}
	if len(set) == 0 {
		return
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.jar == nil {
		rv.jar = newJar()
		rv.shadow = map[string]bool{}
	}
	// Which of them apply to this stream's URL is the jar's decision: a
	// jar of their live copies tells, also for those that delete.
	probe := newJar()
	live := make([]*http.Cookie, len(set))
	for i, c := range set {
		l := *c
		l.MaxAge, l.Expires, l.RawExpires = 0, time.Time{}, ""
		live[i] = &l
	}
	probe.SetCookies(rv.site, live)
	for _, c := range probe.Cookies(rv.site) {
		rv.shadow[c.Name] = true
	}
	rv.jar.SetCookies(rv.site, set)
}

// Prepare sets up's Cookie field and auth_header fields for the next
// attempt. It returns an error wrapping ErrCredentials when an auth_header
// value now reads an empty cookie (the upstream deleted it): the browser's
// own reconnect would get a 401 from the proxy.
func (rv *Revisit) Prepare(up *http.Request) error {
	if rv == nil {
		return nil
	}
	rv.mu.Lock()
	if rv.jar == nil {
		rv.mu.Unlock()
		return nil // the upstream set no cookie: the request stands
	}
	cookie := rv.cookieLocked()
	rv.mu.Unlock()

	owned := rv.shaper.owned
	if !containsFold(owned, "Cookie") {
		if cookie == "" {
			delete(up.Header, "Cookie")
		} else {
			up.Header["Cookie"] = []string{cookie}
		}
	}
	if rv.known == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	req := &http.Request{Header: http.Header{"Cookie": {cookie}}}
	repl.Map(func(key string) (any, bool) {
		if strings.HasPrefix(key, cookieKeyPrefix) {
			// As Caddy reads a cookie placeholder: the first cookie of
			// that name, in any case.
			name := key[len(cookieKeyPrefix):]
			for _, c := range req.Cookies() {
				if strings.EqualFold(name, c.Name) {
					return c.Value, true
				}
			}
			return "", true
		}
		if strings.EqualFold(key, cookieHeaderKey) {
			return cookie, true
		}
		k, ok := rv.known[key]
		return k.v, ok && k.ok
	})
	values := make([]string, len(rv.shaper.headers))
	for i, h := range rv.shaper.headers {
		v, err := repl.ReplaceOrErr(h.Value, true, true)
		if err != nil {
			return fmt.Errorf("auth_header %s: %w: a placeholder is empty", h.Field, ErrCredentials)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("auth_header %s: %w: the value holds a control character", h.Field, ErrCredentials)
		}
		values[i] = v
	}
	for _, f := range owned {
		delete(up.Header, f)
	}
	for i, h := range rv.shaper.headers {
		up.Header.Add(h.Field, values[i])
	}
	return nil
}

// cookieLocked is the Cookie field the browser would send now: the
// client's cookies, less those the upstream replaced, then the jar's.
// Callers hold mu.
func (rv *Revisit) cookieLocked() string {
	var b strings.Builder
	for _, line := range rv.client {
		// Split by hand rather than parsed: net/http's parser drops or
		// rewrites values it finds invalid, and the client's cookies that
		// stay must reach the upstream byte for byte.
		for pair := range strings.SplitSeq(line, ";") {
			pair = strings.TrimSpace(pair)
			name, _, _ := strings.Cut(pair, "=")
			if pair == "" || rv.shadow[strings.TrimSpace(name)] {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(pair)
		}
	}
	for _, c := range rv.jar.Cookies(rv.site) {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(c.String())
	}
	return b.String()
}

// newJar is a cookie jar that refuses cookies for public suffixes, as
// browsers do.
func newJar() *cookiejar.Jar {
	jar, err := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	if err != nil {
		panic(err) // cookiejar.New never fails
	}
	return jar
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
