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
func TestClusterEventSourceResumesOnAnotherInstanceWhenItsInstanceIsKilled(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		c := testcluster.Start(t, 3, 50*time.Millisecond, "retry 500ms")
		lb := startBalancer(t, c.Instances)
		page := openPage(t, e, lb.URL)

		es := page.openStream(lb.URL + "/feed")
		before := es.waitFor("20 events", 30*time.Second, func(o observed) bool { return len(o.Events) >= 20 })
		if got := lb.servedBy(); len(got) != 1 || got[0] != 0 {
			t.Fatalf("the stream was served by instances %v; want the first", got)
		}

		c.Instances[0].Kill(t)
		madeAtKill := c.Upstream.Newest()
		var killedAt float64 // the page's clock (performance.now()) just after the kill
		page.eval(`performance.now()`, &killedAt)
		last := atoi(t, before.Events[len(before.Events)-1].ID)
		o := es.waitFor("40 events after the kill", 30*time.Second, func(o observed) bool {
			return len(o.Opens) >= 2 && len(o.Events) > 0 && atoi(t, o.Events[len(o.Events)-1].ID) >= last+40
		})
		es.close()

		for i, ev := range o.Events {
			n := atoi(t, ev.ID)
			if i > 0 && n != atoi(t, o.Events[i-1].ID)+1 {
				t.Fatalf("id %d follows %s (lost or repeated): %s", n, o.Events[i-1].ID, o)
			}
			if ev.Data != "event "+ev.ID {
				t.Fatalf("event %s has data %q", ev.ID, ev.Data)
			}
		}
		for _, er := range o.Errors {
			if er.State != connecting {
				t.Fatalf("an error left the EventSource in state %d, not reconnecting: %s", er.State, o)
			}
		}
		if len(o.Errors) == 0 || len(o.Opens) != len(o.Errors)+1 {
			t.Errorf("%d errors and %d opens; want one more open than errors: %s", len(o.Errors), len(o.Opens), o)
		}
		served := lb.servedBy()
		for _, i := range served[1:] {
			if i == 0 {
				t.Errorf("a reconnect went to the killed instance: %v", served)
			}
		}
		if n := c.Upstream.Requests.Load(); n != 2 {
			t.Errorf("the upstream was asked %d times; want 2 (the killed holder, then the one that took over)", n)
		}

		// From the kill: the page's error, its next open, its next event.
		ms := func(at float64) time.Duration {
			return time.Duration((at - killedAt) * float64(time.Millisecond)).Round(time.Millisecond)
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
		t.Logf("%s: after the kill, error at %v, reopened at %v (through instances %v), next event at %v, first event the upstream made after the kill (id %d) at %v; %d errors, %d opens, ids %s..%s consecutive, upstream asked %d times",
			e.name, ms(o.Errors[0].At), ms(o.Opens[1]), served, ms(next), madeAtKill+1, ms(made), len(o.Errors), len(o.Opens),
			o.Events[0].ID, o.Events[len(o.Events)-1].ID, c.Upstream.Requests.Load())
	})
}

// balancer is a load balancer in front of a cluster, as one origin for the
// page: an HTTPS server (HTTP/2) that serves testdata's page.html itself
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
func startBalancer(t *testing.T, instances []*testcluster.Instance) *balancer {
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
	srv.EnableHTTP2 = true
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
