package sseproxy_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// wait is generous: these are bounds for a busy 2-core machine, not timings.
const wait = 10 * time.Second

// script returns an upstream handler that writes its steps in order: a
// string is written and flushed, a duration is slept, a channel is waited
// for. After the last step it holds the stream open until the client goes.
func script(steps ...any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		for _, s := range steps {
			switch s := s.(type) {
			case string:
				write(w, s)
			case time.Duration:
				select {
				case <-time.After(s):
				case <-r.Context().Done():
					return
				}
			case chan struct{}:
				select {
				case <-s:
				case <-r.Context().Done():
					return
				}
			}
		}
		<-r.Context().Done()
	}
}

func TestStreamsEventsOverEveryProtocol(t *testing.T) {
	for _, p := range testcaddy.Protos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, script("id: 1\ndata: one\n\n"))
			base := startSite(t, "sse_proxy "+up.addr())
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
			if s.Resp.Proto != string(p) {
				t.Fatalf("proto %s, want %s", s.Resp.Proto, p)
			}
			s.WaitFor(t, "id: 1\ndata: one\n\n", wait)
		})
	}
}

// Behaviour 1: the header reaches the client before the first event, and
// each event as soon as the upstream writes it: the upstream writes the
// next event only once the client has the previous one.
func TestHeaderAndEachEventArriveAtOnce(t *testing.T) {
	testcaddy.LeakCheck(t)
	release := make([]chan struct{}, 4)
	steps := []any{}
	for i := range release {
		release[i] = make(chan struct{})
		steps = append(steps, release[i], fmt.Sprintf("data: %d\n\n", i))
	}
	up := newUpstream(t, script(steps...))
	base := startSite(t, "sse_proxy "+up.addr())
	// Open returns with the response header while the upstream is still
	// waiting to write its first event.
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", nil)
	if s.Resp.StatusCode != 200 {
		t.Fatalf("status %d", s.Resp.StatusCode)
	}
	for i := range release {
		close(release[i])
		s.WaitFor(t, fmt.Sprintf("data: %d\n\n", i), wait)
	}
}

// Behaviour 1 with encode: the stream is neither compressed nor held back,
// also when a site-wide encode wraps the handle block (encode sorts before
// handle, so directive order alone cannot keep it out).
func TestEncodeLeavesTheStreamAlone(t *testing.T) {
	for name, site := range map[string]string{
		"same level":   "encode gzip zstd\nsse_proxy %s",
		"handle block": "encode gzip zstd\nhandle /events* {\n\tsse_proxy %s\n}",
		// The middleware alone runs before encode, which then wraps
		// reverse_proxy: the stream request must not invite compression.
		"encode inside": "encode gzip zstd\nsse_proxy {\n\theartbeat 1m\n}\nreverse_proxy %s",
		// A shared HTTP/1.1 client's connection is taken over from under
		// encode's writer.
		"shared HTTP/1.1": "encode gzip zstd\nsse_proxy %s {\n\tshare\n}",
	} {
		t.Run(name, func(t *testing.T) {
			testcaddy.LeakCheck(t)
			next := make(chan struct{})
			up := newUpstream(t, script("data: first\n\n", next, "data: second\n\n"))
			base := startSite(t, fmt.Sprintf(site, up.addr()))
			proto := testcaddy.H2
			if strings.HasPrefix(name, "shared") {
				proto = testcaddy.H1
			}
			s := testcaddy.Open(t, testcaddy.Client(t, proto), base+"/events",
				http.Header{"Accept-Encoding": {"gzip, zstd"}, "Accept": {"text/event-stream"}})
			if ce := s.Resp.Header.Get("Content-Encoding"); ce != "" {
				t.Fatalf("stream compressed with %s", ce)
			}
			s.WaitFor(t, "data: first\n\n", wait)
			close(next)
			s.WaitFor(t, "data: second\n\n", wait)
		})
	}
}

// With encode between the middleware and reverse_proxy, what is not a
// stream is still compressed.
func TestEncodeStillCompressesOtherResponses(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("plain text ", 200))
	})
	base := startSite(t, "encode gzip\nsse_proxy\nreverse_proxy "+up.addr())
	req, _ := http.NewRequest(http.MethodGet, base+"/doc", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := testcaddy.Client(t, testcaddy.H2).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if string(b) != strings.Repeat("plain text ", 200) {
		t.Fatalf("body %q", b)
	}
}

// Behaviour 2: heartbeats while idle, only between events; an event split
// around a quiet period arrives whole; every line ending style.
func TestHeartbeatsOnlyBetweenEvents(t *testing.T) {
	for _, p := range testcaddy.Protos {
		for name, eol := range map[string]string{"LF": "\n", "CRLF": "\r\n", "CR": "\r"} {
			t.Run(string(p)+"/"+name, func(t *testing.T) {
				testcaddy.LeakCheck(t)
				quiet := 600 * time.Millisecond
				parts := []string{
					"id: 1" + eol + "data: a" + eol + eol,
					"data: hel",
					"lo" + eol + "data: world" + eol,
					eol,
				}
				done := make(chan struct{})
				up := newUpstream(t, script(parts[0], quiet, parts[1], quiet, parts[2], quiet, parts[3], quiet, done))
				base := startSite(t, "sse_proxy "+up.addr()+" {\n\theartbeat 100ms\n}")
				s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
				want := strings.Join(parts, "")
				if !s.Wait(wait, func(b []byte, _ error) bool {
					return bytes.Equal(testcaddy.StripHeartbeats(b), []byte(want)) && bytes.HasSuffix(b, []byte(":\n"))
				}) {
					t.Fatalf("got %q, want %q with heartbeats", s.Bytes(), want)
				}
				close(done)
				got := s.Bytes()
				// The split event reached the client in one piece: no
				// heartbeat between its halves or its lines.
				if !bytes.Contains(got, []byte("data: hello"+eol+"data: world"+eol+eol)) {
					t.Errorf("event split by a heartbeat: %q", got)
				}
				if n := bytes.Count(got, []byte(":\n")); n < 2 {
					t.Errorf("%d heartbeats in %v of quiet at 100ms, want several: %q", n, 4*quiet, got)
				}
				events, _, _ := testcaddy.ParseEvents(got)
				if len(events) != 2 || events[0].Data != "a" || events[1].Data != "hello\nworld" {
					t.Errorf("events %+v", events)
				}
			})
		}
	}
}

func TestHeartbeatOffSendsNone(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n", 500*time.Millisecond, "data: b\n\n"))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\theartbeat off\n}")
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", nil)
	s.WaitFor(t, "data: b\n\n", wait)
	if got := s.Bytes(); string(got) != "data: a\n\ndata: b\n\n" {
		t.Errorf("got %q", got)
	}
}

// Behaviour 3: retry first.
func TestRetryIsTheFirstLine(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tretry 2500ms\n}")
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", nil)
	s.WaitFor(t, "data: a\n\n", wait)
	if got := s.Bytes(); !bytes.HasPrefix(got, []byte("retry: 2500\ndata: a")) {
		t.Errorf("got %q", got)
	}
}

// Behaviour 4: connection-specific fields never reach an HTTP/2 or HTTP/3
// client, whoever set them: here both the upstream and the site's own
// header directive. quic-go's client rejects such a response outright.
func TestConnectionFieldsAreRemoved(t *testing.T) {
	for _, p := range testcaddy.Protos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "private")
				w.Header().Set("Connection", "keep-alive")
				w.Header().Set("Keep-Alive", "timeout=5")
				write(w, "data: a\n\n")
				<-r.Context().Done()
			})
			base := startSite(t, fmt.Sprintf(`header {
	Keep-Alive "timeout=60"
	Proxy-Connection keep-alive
	Upgrade h2c
	Te trailers
	X-Site yes
}
sse_proxy %s`, up.addr()))
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
			s.WaitFor(t, "data: a\n\n", wait)
			h := s.Resp.Header
			for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "Transfer-Encoding", "Content-Length"} {
				if v, ok := h[k]; ok {
					t.Errorf("%s: %q", k, v)
				}
			}
			if h.Get("X-Site") != "yes" {
				t.Error("the site's own header was lost")
			}
			if got := h.Get("Cache-Control"); got != "private, no-transform" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := h.Get("X-Accel-Buffering"); got != "no" {
				t.Errorf("X-Accel-Buffering %q", got)
			}
		})
	}
}

func TestDefaultCacheControl(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		write(w, "data: a\n\n")
		<-r.Context().Done()
	})
	base := startSite(t, "sse_proxy "+up.addr())
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H1), base+"/events", nil)
	s.WaitFor(t, "data: a\n\n", wait)
	if got := s.Resp.Header.Get("Cache-Control"); got != "no-cache, no-transform" {
		t.Errorf("Cache-Control %q", got)
	}
}

// Behaviour 5: CORS is the proxy's.
func TestCORSPolicyReplacesTheUpstreams(t *testing.T) {
	const app = "https://app.example.com"
	for _, tc := range []struct {
		name, origins, block, origin string
		wantACAO, wantCreds          string
	}{
		{"exact with credentials", app, "credentials", app, app, "true"},
		{"wildcard subdomain", "https://*.example.com", "", app, app, ""},
		{"star", "*", "", app, "*", ""},
		{"disallowed", app, "credentials", "https://evil.example.org", "", ""},
		{"no origin", app, "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, script("data: a\n\n")) // sends its own ACAO: *
			base := startSite(t, fmt.Sprintf("sse_proxy %s {\n\tcors %s {\n\t\texpose_headers X-Seq\n\t\t%s\n\t}\n}", up.addr(), tc.origins, tc.block))
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", h)
			s.WaitFor(t, "data: a\n\n", wait)
			rh := s.Resp.Header
			if got := rh.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Errorf("Allow-Origin %q, want %q", got, tc.wantACAO)
			}
			if got := rh.Get("Access-Control-Allow-Credentials"); got != tc.wantCreds {
				t.Errorf("Allow-Credentials %q, want %q", got, tc.wantCreds)
			}
			wantExpose := ""
			if tc.wantACAO != "" {
				wantExpose = "X-Seq"
			}
			if got := rh.Get("Access-Control-Expose-Headers"); got != wantExpose {
				t.Errorf("Expose-Headers %q, want %q", got, wantExpose)
			}
			if got := rh.Values("Vary"); !containsToken(got, "Origin") {
				t.Errorf("Vary %q lacks Origin", got)
			}
		})
	}
}

func containsToken(values []string, tok string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

func TestPreflightIsAnsweredHereAndNeverProxied(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	base := startSite(t, fmt.Sprintf("sse_proxy %s {\n\tcors https://app.example.com {\n\t\tcredentials\n\t\tmax_age 10m\n\t\tallow_headers X-Client\n\t}\n}", up.addr()))
	c := testcaddy.Client(t, testcaddy.H2)
	for origin, allowed := range map[string]bool{"https://app.example.com": true, "https://evil.example.org": false} {
		req, _ := http.NewRequest(http.MethodOptions, base+"/events", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "last-event-id")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: status %d", origin, resp.StatusCode)
		}
		h := resp.Header
		if allowed {
			if h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" ||
				h.Get("Access-Control-Allow-Methods") != "GET, HEAD" ||
				h.Get("Access-Control-Allow-Headers") != "Last-Event-ID, Cache-Control, X-Client" ||
				h.Get("Access-Control-Max-Age") != "600" {
				t.Errorf("%s: preflight answer %v", origin, h)
			}
		} else if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("%s: disallowed origin got CORS fields %v", origin, h)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream got %d requests, want none", n)
	}
}

// Behaviour 6: auth headers from a cookie or a query parameter.
func TestAuthHeaderFromCookie(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	base := startSite(t, fmt.Sprintf(`sse_proxy %s {
	auth_header Authorization "Bearer {cookie.session}"
	cors https://app.example.com {
		credentials
	}
}`, up.addr()))
	c := testcaddy.Client(t, testcaddy.H2)
	s := testcaddy.Open(t, c, base+"/events", http.Header{
		"Cookie":        {"session=tok-123"},
		"Authorization": {"Bearer forged-by-client"},
	})
	s.WaitFor(t, "data: a\n\n", wait)
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d upstream requests", len(reqs))
	}
	if got := reqs[0].Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer tok-123" {
		t.Errorf("upstream Authorization %q", got)
	}

	// Without the cookie: 401 at the proxy, with CORS so a page can see
	// it, and the upstream is never contacted.
	req, _ := http.NewRequest(http.MethodGet, base+"/events", nil)
	req.Header.Set("Authorization", "Bearer forged-by-client")
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("401 without CORS: %v", resp.Header)
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream contacted without credentials: %d requests", n)
	}
}

func TestAuthHeaderFromQueryStripsTheToken(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	base := startSite(t, fmt.Sprintf(`sse_proxy %s {
	auth_header Authorization "Bearer {query.token}"
	auth_header X-Api-Key "{http.request.uri.query.key}"
}`, up.addr()))
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H1), base+"/events?room=7&token=t0k&key=k3y&x=%2F", nil)
	s.WaitFor(t, "data: a\n\n", wait)
	r := up.requests()[0]
	if got := r.Header.Get("Authorization"); got != "Bearer t0k" {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get("X-Api-Key"); got != "k3y" {
		t.Errorf("X-Api-Key %q", got)
	}
	if r.URL.RawQuery != "room=7&x=%2F" {
		t.Errorf("upstream query %q: tokens must not reach the upstream", r.URL.RawQuery)
	}
}

// Behaviour 7: disconnect, Last-Event-ID, 204.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	for _, p := range testcaddy.Protos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			gone := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				sseHeaders(w)
				write(w, "data: a\n\n")
				<-r.Context().Done()
				close(gone)
			})
			base := startSite(t, "sse_proxy "+up.addr())
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
			s.WaitFor(t, "data: a\n\n", wait)
			s.Close()
			select {
			case <-gone:
			case <-time.After(wait):
				t.Fatal("upstream request still open after the client left")
			}
		})
	}
}

func TestLastEventIDReachesUpstream(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		script("data: after "+r.Header.Get("Last-Event-ID")+"\n\n")(w, r)
	})
	base := startSite(t, "sse_proxy "+up.addr())
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", http.Header{"Last-Event-ID": {"41"}})
	s.WaitFor(t, "data: after 41\n\n", wait)
}

func TestUpstream204ReachesClient(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tretry 1s\n}")
	resp, err := testcaddy.Client(t, testcaddy.H2).Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
		t.Errorf("got %d %q, want 204 and no body", resp.StatusCode, b)
	}
}

// Behaviour 8: anything else passes through untouched, but for CORS.
func TestOtherResponsesPassThrough(t *testing.T) {
	testcaddy.LeakCheck(t)
	const body = `{"ok":true}`
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, body)
	})
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tretry 1s\n\theartbeat 50ms\n\tcors https://app.example.com\n}")
	req, _ := http.NewRequest(http.MethodGet, base+"/api", nil)
	req.Header.Set("Origin", "https://app.example.com")
	resp, err := testcaddy.Client(t, testcaddy.H1).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || string(b) != body {
		t.Errorf("got %d %q", resp.StatusCode, b)
	}
	h := resp.Header
	if h.Get("Content-Length") != fmt.Sprint(len(body)) || h.Get("Cache-Control") != "max-age=60" || h.Get("X-Accel-Buffering") != "" {
		t.Errorf("header changed: %v", h)
	}
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("no CORS for an allowed origin: %v", h)
	}
}

// The middleware alone, in front of another handler.
func TestMiddlewareInFrontOfAnotherHandler(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n", 500*time.Millisecond, "data: b\n\n"))
	base := startSite(t, fmt.Sprintf("sse_proxy {\n\theartbeat 100ms\n\tretry 1s\n}\nreverse_proxy %s", up.addr()))
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", nil)
	s.WaitFor(t, "data: b\n\n", wait)
	got := s.Bytes()
	if !bytes.HasPrefix(got, []byte("retry: 1000\ndata: a\n\n:\n")) {
		t.Errorf("got %q", got)
	}
}

// A stop ends open streams promptly, at a boundary, with a retry hint,
// instead of waiting for them forever (Caddy's default grace period).
func TestStopEndsStreamsWithRetry(t *testing.T) {
	for _, p := range testcaddy.Protos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, script("data: a\n\n", "data: partial"))
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tretry 2s\n}")
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
			s.WaitFor(t, "data: a\n\n", wait)
			start := time.Now()
			stopped := make(chan error, 1)
			go func() { stopped <- caddy.Stop() }()
			err := s.WaitEnd(t, wait)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("stream ended %v after stop, want about a second at most", took)
			}
			_, _, retry := testcaddy.ParseEvents(s.Bytes())
			if retry < 2000 || retry >= 4000 {
				t.Errorf("retry hint %d ms, want 2000-4000 (jittered); body %q", retry, s.Bytes())
			}
			if p != testcaddy.H1 && !errors.Is(err, io.EOF) {
				t.Errorf("stream ended with %v, want a clean end", err)
			}
			if err := <-stopped; err != nil {
				t.Error(err)
			}
		})
	}
}

// Requests through the proxy are counted in Caddy's Prometheus registry.
func TestHeartbeatsAreCounted(t *testing.T) {
	testcaddy.LeakCheck(t)
	var n atomic.Int32
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		script("data: a\n\n")(w, r)
	})
	port := testcaddy.FreePort(t)
	mport := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\tsse_proxy %s {\n\t\theartbeat 50ms\n\t}\n}\nhttp://localhost:%d {\n\tmetrics\n}\n",
		testcaddy.GlobalOptions, port, up.addr(), mport))
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), fmt.Sprintf("https://localhost:%d/events", port), nil)
	s.WaitFor(t, "data: a\n\n:\n:\n", wait)
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", mport))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"caddy_sse_proxy_streams_open 1", "caddy_sse_proxy_heartbeats_total", "caddy_sse_proxy_events_relayed_total"} {
		if !bytes.Contains(b, []byte(m)) {
			t.Errorf("metrics lack %q", m)
		}
	}
}

// A stream whose client goes away ends as client_gone in the metrics,
// shared or not: the handler records it on its way out (before the
// writer's close counts the end), and a taken-over connection (a shared
// HTTP/1.1 client) when it finds the client gone.
func TestAClientThatGoesIsCountedAsGone(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	port, mport := testcaddy.FreePort(t), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\thandle /shared/* {\n\t\tsse_proxy %s {\n\t\t\tshare\n\t\t}\n\t}\n\thandle {\n\t\tsse_proxy %s\n\t}\n}\nhttp://localhost:%d {\n\tmetrics\n}\n",
		testcaddy.GlobalOptions, port, up.addr(), up.addr(), mport))
	scrape := metricsAt(t, mport)
	const gone = `caddy_sse_proxy_streams_ended_total{reason="client_gone"}`
	// (Counters are the process's: count from what they are now.)
	before := metricValue(scrape(), gone)
	n := 0
	for _, path := range []string{"/shared/", "/"} {
		for _, p := range []testcaddy.Proto{testcaddy.H1, testcaddy.H2} {
			// A path of its own: each shared client starts its hub, and
			// gets the upstream's first event.
			url := fmt.Sprintf("https://localhost:%d%sevents-%d", port, path, n)
			s := testcaddy.Open(t, testcaddy.Client(t, p), url, sseAccept)
			s.WaitFor(t, "data: a\n\n", wait)
			s.Close()
			n++
			deadline := time.Now().Add(wait)
			for m := scrape(); metricValue(m, gone)-before != float64(n); m = scrape() {
				if time.Now().After(deadline) {
					t.Fatalf("%s client of %s gone: %v streams counted as client_gone, want %d: %s", p, path, metricValue(m, gone)-before, n, grepMetrics(m))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}
