package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"

	_ "github.com/sse-proxy/caddy-sse-proxy" // the sse_proxy module
)

// upstream is the legacy SSE backend of a test: an HTTP/1.1 httptest
// server that records the requests it gets.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

// request is what the upstream saw of one request.
type request struct {
	Header http.Header
	At     time.Time
}

// newUpstream starts an upstream whose handler gets each request with its
// number (0 for the first). Start it before Caddy, so that it stops after
// Caddy does.
func newUpstream(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		n := len(u.reqs)
		u.reqs = append(u.reqs, request{Header: r.Header.Clone(), At: time.Now()})
		u.mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(u.Close)
	return u
}

// requests returns the requests received so far.
func (u *upstream) requests() []request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]request(nil), u.reqs...)
}

// addr is the upstream's host:port.
func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// startHeaders and send are a legacy backend's header and per-event write.
var (
	startHeaders = testcaddy.LegacyHeaders
	send         = testcaddy.Send
)

// sites are the origins of one test Caddy, all on localhost (one site, in
// the cookie sense), each on its own port.
type sites struct {
	// App serves testdata (page.html) and is the origin the stream's cors
	// allows.
	App string
	// Other serves the same files but is not allowed by cors.
	Other string
	// Stream is sse_proxy in front of the upstream; StreamURL is its
	// stream.
	Stream, StreamURL string
}

// startSites runs a Caddy with the three sites and returns their origins.
// sseOptions are extra sse_proxy subdirectives (heartbeat, retry,
// auth_header).
func startSites(t *testing.T, up *upstream, sseOptions ...string) sites {
	t.Helper()
	return startSitesWith(t, up, "", sseOptions...)
}

// startSitesWith is startSites with the stream site's protocols set (such
// as "h1"); empty means the usual h1, h2 and h3.
func startSitesWith(t *testing.T, up *upstream, streamProtocols string, sseOptions ...string) sites {
	t.Helper()
	root, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	s := sites{
		App:    fmt.Sprintf("https://localhost:%d", testcaddy.FreePort(t)),
		Other:  fmt.Sprintf("https://localhost:%d", testcaddy.FreePort(t)),
		Stream: fmt.Sprintf("https://localhost:%d", testcaddy.FreePort(t)),
	}
	s.StreamURL = s.Stream + "/events"
	// The page origins serve testdata, and under /lib/ the client
	// libraries' bundle (see bundleClients).
	static := func(origin string) string {
		return fmt.Sprintf("%s {\n\ttls {CERT} {KEY}\n\thandle_path /lib/* {\n\t\troot * %q\n\t\tfile_server\n\t}\n\thandle {\n\t\troot * %q\n\t\tfile_server\n\t}\n}\n",
			origin, filepath.Join(workDir, "lib"), root)
	}
	var opts strings.Builder
	for _, o := range sseOptions {
		fmt.Fprintf(&opts, "\t\t\t%s\n", o)
	}
	global := testcaddy.GlobalOptions
	if streamProtocols != "" {
		port := s.Stream[strings.LastIndex(s.Stream, ":"):]
		global = strings.Replace(global, "\tservers {", fmt.Sprintf("\tservers %s {\n\t\tprotocols %s\n\t}\n\tservers {", port, streamProtocols), 1)
	}
	// The stream site: sse_proxy on /events; /login sets the session
	// cookie a top-level navigation brings (the same way in every
	// engine); /proto answers the protocol the browser used, for engines
	// whose resource timing does not tell it.
	cf := global + static(s.App) + static(s.Other) + fmt.Sprintf(`%s {
	tls {CERT} {KEY}
	# Lets the app origin read the stream's resource timing.
	header Timing-Allow-Origin %s
	handle /login {
		header Set-Cookie "session={query.session}; Path=/; Secure; HttpOnly; SameSite=None"
		respond "logged in"
	}
	handle /proto {
		header Access-Control-Allow-Origin %s
		respond "{http.request.proto}"
	}
	handle /events {
		sse_proxy %s {
			cors %s {
				credentials
			}
%s		}
	}
}
`, s.Stream, s.App, s.App, up.addr(), s.App, opts.String())
	testcaddy.Start(t, cf)
	return s
}

// openPage opens a tab of e on origin's test page.
func openPage(t *testing.T, e *engine, origin string) *tab {
	t.Helper()
	tb := newTab(t, e)
	tb.navigate(origin + "/page.html")
	return tb
}
