package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcluster"
)

// TestClusterEventSourceResumesOnAnotherInstanceWhenItsInstanceIsKilled:
// three Caddy processes share a stream on one Redis behind a load balancer
// (one origin for the page). The instance that serves the page's
// EventSource, which is also the one reading the upstream, is killed with
// SIGKILL: the browser reconnects through the balancer to another instance
// with Last-Event-ID and the page sees consecutive ids, none lost, none
// repeated, while another instance takes over the upstream.
//
// Two pages, each behind a balancer of its own: one speaks HTTP/2 to the
// browser (the balancer resets the page's stream, RST_STREAM, when its
// instance dies), one HTTP/1.1 (the balancer closes the connection).
// WebKitGTK 2.50 does not notice the reset of an HTTP/2 stream: its
// EventSource stays OPEN and gets nothing more, without an error to
// reconnect on. The test accepts that for WebKit over HTTP/2 only, and
// checks that nothing else reached that page: no gap, no repeat.
func TestClusterEventSourceResumesOnAnotherInstanceWhenItsInstanceIsKilled(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		c := testcluster.Start(t, 3, 50*time.Millisecond, "retry 500ms")
		type client struct {
			proto    string
			lb       *balancer
			page     *tab
			es       *stream
			last     int     // the newest id before the kill
			killedAt float64 // the page's clock (performance.now()) just before the kill
		}
		var clients []*client
		for _, proto := range []string{"h2", "h1"} {
			cl := &client{proto: proto, lb: startBalancer(t, c.Instances, proto == "h2")}
			cl.page = openPage(t, e, cl.lb.URL)
			cl.es = cl.page.openStream(cl.lb.URL + "/feed")
			clients = append(clients, cl)
		}
		for _, cl := range clients {
			o := cl.es.waitFor(cl.proto+": 20 events", 30*time.Second, func(o observed) bool { return len(o.Events) >= 20 })
			cl.last = atoi(t, o.Events[len(o.Events)-1].ID)
			if got := cl.lb.servedBy(); len(got) != 1 || got[0] != 0 {
				t.Fatalf("%s: the stream was served by instances %v; want the first", cl.proto, got)
			}
		}

		for _, cl := range clients {
			cl.page.eval(`performance.now()`, &cl.killedAt)
		}
		c.Instances[0].Kill(t)
		killed := time.Now()
		madeAtKill := c.Upstream.Newest()

		for _, cl := range clients {
			var o observed
			hangs := e.name == "webkit" && cl.proto == "h2"
			if hangs {
				time.Sleep(time.Until(killed.Add(5 * time.Second)))
				o = cl.es.observed()
			} else {
				o = cl.es.waitFor(cl.proto+": 40 events after the kill", 30*time.Second, func(o observed) bool {
					return len(o.Opens) >= 2 && len(o.Events) > 0 && atoi(t, o.Events[len(o.Events)-1].ID) >= cl.last+40
				})
			}
			cl.es.close()
			checkConsecutive(t, cl.proto, o)
			served := cl.lb.servedBy()
			for _, i := range served[1:] {
				if i == 0 {
					t.Errorf("%s: a reconnect went to the killed instance: %v", cl.proto, served)
				}
			}
			if hangs {
				if len(o.Errors) != 0 || len(o.Opens) != 1 || o.State != open || atoi(t, o.Events[len(o.Events)-1].ID) > madeAtKill {
					t.Errorf("%s: WebKit noticed the reset of its HTTP/2 stream (update this test and the README): %s", cl.proto, o)
				}
				t.Logf("%s: 5 s after the kill: no error, state OPEN, no event after id %s (WebKit ignores the stream's reset)",
					cl.proto, o.Events[len(o.Events)-1].ID)
				continue
			}
			if len(o.Errors) == 0 || len(o.Opens) != len(o.Errors)+1 {
				t.Errorf("%s: %d errors and %d opens; want one more open than errors: %s", cl.proto, len(o.Errors), len(o.Opens), o)
				continue
			}

			// From the kill: the page's error, its next open, its next
			// event, the first event the upstream made after the kill.
			ms := func(at float64) time.Duration {
				return time.Duration((at - cl.killedAt) * float64(time.Millisecond)).Round(time.Millisecond)
			}
			var next, made float64
			for _, ev := range o.Events {
				if next == 0 && ev.At > o.Opens[1] {
					next = ev.At
				}
				if made == 0 && atoi(t, ev.ID) > madeAtKill {
					made = ev.At
				}
			}
			t.Logf("%s: after the kill, error at %v, reopened at %v (instances %v), next event at %v, id %d (the first the upstream made after the kill) at %v; %d errors, %d opens, ids %s..%s consecutive",
				cl.proto, ms(o.Errors[0].At), ms(o.Opens[1]), served, ms(next), madeAtKill+1, ms(made), len(o.Errors), len(o.Opens),
				o.Events[0].ID, o.Events[len(o.Events)-1].ID)
		}
		if n := c.Upstream.Requests.Load(); n != 2 {
			t.Errorf("the upstream was asked %d times; want 2 (the killed holder, then the one that took over)", n)
		}
	})
}

// checkConsecutive fails the test unless the page saw events with
// consecutive ids, each with the numbered upstream's data for its id, and
// no error that closed the EventSource for good.
func checkConsecutive(t *testing.T, what string, o observed) {
	t.Helper()
	for i, ev := range o.Events {
		if i > 0 && atoi(t, ev.ID) != atoi(t, o.Events[i-1].ID)+1 {
			t.Fatalf("%s: id %s follows %s (lost or repeated): %s", what, ev.ID, o.Events[i-1].ID, o)
		}
		if ev.Data != "event "+ev.ID {
			t.Fatalf("%s: event %s has data %q", what, ev.ID, ev.Data)
		}
	}
	for _, er := range o.Errors {
		if er.State != connecting {
			t.Fatalf("%s: an error left the EventSource in state %d, not reconnecting: %s", what, er.State, o)
		}
	}
}

// balancer is a load balancer in front of a cluster, as one origin for the
// page: an HTTPS server (HTTP/2 when h2, else HTTP/1.1) that serves testdata's page.html itself
// and proxies every other request to the first instance of its list that
// takes it, failing over to the next when an instance refuses the
// connection (or the connection fails before an answer).
type balancer struct {
	URL string // the origin, https://127.0.0.1:port

	backends  []*url.URL
	transport *http.Transport

	mu     sync.Mutex // guards served; held for an append or a copy, no I/O; a leaf lock
	served []int      // the index of the instance that answered each proxied request
}

// startBalancer runs a balancer in front of instances until the test ends.
func startBalancer(t *testing.T, instances []*testcluster.Instance, h2 bool) *balancer {
	t.Helper()
	root, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the instances' test certificate
		ForceAttemptHTTP2: true,
	}}
	for _, in := range instances {
		u, err := url.Parse(in.URL)
		if err != nil {
			t.Fatal(err)
		}
		b.backends = append(b.backends, u)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(*httputil.ProxyRequest) {}, // RoundTrip picks the instance
		Transport:     b,
		FlushInterval: -1,
	}
	mux := http.NewServeMux()
	mux.Handle("GET /page.html", http.FileServer(http.Dir(root)))
	mux.Handle("/", proxy)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		b.transport.CloseIdleConnections()
	})
	b.URL = srv.URL
	return b
}

// RoundTrip sends r to the first instance that takes it.
func (b *balancer) RoundTrip(r *http.Request) (*http.Response, error) {
	var err error
	for i, u := range b.backends {
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.Host = u.Scheme, u.Host, ""
		var resp *http.Response
		resp, err = b.transport.RoundTrip(out)
		if err == nil {
			b.mu.Lock()
			b.served = append(b.served, i)
			b.mu.Unlock()
			return resp, nil
		}
		if r.Context().Err() != nil || r.Method != http.MethodGet {
			break // the client left, or the request may not be sent twice
		}
	}
	return nil, fmt.Errorf("no instance took the request: %w", err)
}

// servedBy returns the index of the instance that answered each proxied
// request so far.
func (b *balancer) servedBy() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.served...)
}
