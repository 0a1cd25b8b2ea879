package sseproxy_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// flaky is an SSE upstream that streams numbered events until its stream
// is broken off (end), and then, for a while (down), fails every request
// by closing the connection without an answer: a transport error that
// reverse_proxy retries a GET after, within lb_try_duration.
type flaky struct {
	seq       atomic.Int64
	downUntil atomic.Int64 // unix nanoseconds
	ends      chan struct{}
}

func (f *flaky) handler(w http.ResponseWriter, r *http.Request) {
	if time.Now().UnixNano() < f.downUntil.Load() {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-f.ends:
			return
		case <-tick.C:
			n := f.seq.Add(1)
			fmt.Fprintf(w, "id: %d\ndata: %d\n\n", n, n)
			http.NewResponseController(w).Flush()
		}
	}
}

// outage ends the upstream's stream and fails every request for d, then
// returns once the client has seen events again, and the number of times
// the shared stream's hub asked the upstream again meanwhile (the hub's
// reconnects; reverse_proxy's own retries within one of them not counted).
func (f *flaky) outage(t *testing.T, s *testcaddy.Stream, scrape func() string, d time.Duration) float64 {
	t.Helper()
	const reconnects = "caddy_sse_proxy_upstream_reconnects_total"
	before := metricValue(scrape(), reconnects)
	f.downUntil.Store(time.Now().Add(d).UnixNano())
	f.ends <- struct{}{}
	after := f.seq.Load()
	if !s.Wait(wait, func(b []byte, _ error) bool {
		got := seq(t, b)
		return len(got) > 0 && int64(got[len(got)-1]) > after
	}) {
		t.Fatalf("no event after the outage: %q (end %v)", s.Bytes(), s.Err())
	}
	return metricValue(scrape(), reconnects) - before
}

// A hub started by the old config keeps its upstream handler across a
// reload. Caddy's reverse_proxy only retries (lb_try_duration, with its
// lb_try_interval) while its handler's context lives, and a reload cancels
// the old handler's: a hub that keeps calling it reconnects without
// reverse_proxy's retries. It must get them as before: an outage that the
// retries ride out within one reconnect before the reload is ridden out
// within one after it too.
func TestReloadKeepsLoadBalancerRetriesOfASharedStream(t *testing.T) {
	testcaddy.LeakCheck(t)
	f := &flaky{ends: make(chan struct{})}
	up := newUpstream(t, f.handler)
	port, mport := testcaddy.FreePort(t), testcaddy.FreePort(t)
	config := func(retry string) string {
		return fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\tsse_proxy %s {\n\t\tshare\n\t\tretry %s\n"+
			"\t\treconnect 100ms 10s\n\t\treconnect_for 1m\n\t\tlb_try_duration 10s\n\t\tlb_try_interval 50ms\n\t}\n}\n"+
			"http://localhost:%d {\n\tmetrics\n}\n",
			testcaddy.GlobalOptions, port, up.addr(), retry, mport)
	}
	scrape := metricsAt(t, mport)
	testcaddy.Start(t, config("1s"))
	url := fmt.Sprintf("https://localhost:%d/events", port)
	c := testcaddy.Client(t, testcaddy.H2)
	s := testcaddy.Open(t, c, url, sseAccept)
	waitSeq(t, s, 3)
	if n := f.outage(t, s, scrape, time.Second); n != 1 {
		t.Fatalf("before the reload, the hub asked %v times to ride out the outage, want 1 (reverse_proxy's retries do the rest)", n)
	}

	testcaddy.Reload(t, config("2s"))
	s.WaitEnd(t, wait)
	got := seq(t, s.Bytes())
	_, _, retry := testcaddy.ParseEvents(s.Bytes())
	time.Sleep(time.Duration(retry) * time.Millisecond) // as the browser would
	again := testcaddy.Open(t, c, url, http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {strconv.Itoa(got[len(got)-1])}})
	waitSeq(t, again, 3)
	if n := f.outage(t, again, scrape, time.Second); n != 1 {
		t.Errorf("after the reload, the hub asked %v times to ride out the outage, want 1: it lost reverse_proxy's retries", n)
	}
	if n := len(up.requests()); n < 3 {
		t.Errorf("upstream got %d requests, want at least 3 (the outages' failed ones among them)", n)
	}
}
