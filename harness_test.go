package sseproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// upstream is a legacy SSE backend for tests: an httptest server that
// records the requests it gets.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

// newUpstream starts h as an HTTP/1.1 upstream on 127.0.0.1. Start it
// before Caddy, so that it stops after Caddy does.
func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, r.Clone(r.Context()))
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// requests returns the requests received so far.
func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs...)
}

// addr is the upstream's host:port.
func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// startSite runs a Caddy with one HTTPS site on a free port whose body is
// directives, and returns the site's base URL.
func startSite(t *testing.T, directives string) string {
	t.Helper()
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n%s\n}\n", testcaddy.GlobalOptions, port, directives))
	return fmt.Sprintf("https://localhost:%d", port)
}

// sseHeaders and write are a legacy backend's header and per-event write.
var (
	sseHeaders = testcaddy.LegacyHeaders
	write      = testcaddy.Send
)

// metricsAt returns a function that reads the Prometheus metrics a test's
// Caddy serves on localhost:port (a site with the metrics handler).
func metricsAt(t *testing.T, port int) func() string {
	return func() string {
		resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", port))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
}
