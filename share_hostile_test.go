package sseproxy_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// Hostile upstreams and clients of shared streams: each test here failed
// before the fix it is named after.

// sharedSiteWithMetrics starts h as the upstream and a Caddy site that
// shares it, with the given sse_proxy subdirectives after share, and a
// metrics site. It returns the site's base URL and a function that scrapes
// the metrics.
func sharedSiteWithMetrics(t *testing.T, h http.HandlerFunc, subdirectives ...string) (string, func() string) {
	t.Helper()
	up := newUpstream(t, h)
	block := "\t\tshare\n"
	for _, d := range subdirectives {
		block += "\t\t" + d + "\n"
	}
	port, mport := testcaddy.FreePort(t), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\tsse_proxy %s {\n%s\t}\n}\nhttp://localhost:%d {\n\tmetrics\n}\n",
		testcaddy.GlobalOptions, port, up.addr(), block, mport))
	scrape := metricsAt(t, mport)
	return fmt.Sprintf("https://localhost:%d", port), scrape
}

// heapBytes is the live heap (and not yet collected garbage) of the test
// process, Caddy included, read without stopping the world.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// An upstream that sends a 50 MB event with no end in sight to a shared
// stream with max_event_size 64KiB: the event is cut, not held. Caddy's
// heap stays flat, the clients (one taken over over HTTP/1.1, one served
// by its handler over HTTP/2) stay connected, get the cut event's id in
// its place, and go on with the next event.
func TestSharedOversizeEventIsCutNotHeld(t *testing.T) {
	testcaddy.LeakCheck(t)
	const size = 50 << 20
	joined := make(chan struct{})
	send := make(chan struct{})
	sent := make(chan struct{})
	h := func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		select {
		case <-joined:
		case <-r.Context().Done():
			return
		}
		write(w, "id: 1\ndata: before\n\n")
		select {
		case <-send:
		case <-r.Context().Done():
			return
		}
		write(w, "id: big\ndata: ")
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		write(w, "\n\nid: 2\ndata: after\n\n")
		close(sent)
		<-r.Context().Done()
	}
	base, scrape := sharedSiteWithMetrics(t, h, "share_linger 100ms", "max_event_size 64KiB")
	var streams []*testcaddy.Stream
	for _, p := range sharedProtos {
		streams = append(streams, testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", sseAccept))
	}
	close(joined)
	for _, s := range streams {
		s.WaitFor(t, "data: before\n\n", wait)
	}
	const cut = "caddy_sse_proxy_shared_events_cut_total"
	m0 := metricValue(scrape(), cut)

	runtime.GC()
	base0 := heapBytes()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		for {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	close(send)
	select {
	case <-sent:
	case <-time.After(60 * time.Second):
		t.Fatal("the upstream could not send its 50 MB event within a minute")
	}
	for _, s := range streams {
		s.WaitFor(t, "data: after\n\n", wait)
	}
	close(stop)
	sampling.Wait()
	growth := int64(peak.Load()) - int64(base0)
	t.Logf("heap growth while a %d MiB event went by: %.1f MiB", size>>20, float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("the heap grew by %.1f MiB while a %d MiB event went by a shared stream with max_event_size 64KiB", float64(growth)/(1<<20), size>>20)
	}
	for i, s := range streams {
		if s.Err() != nil {
			t.Errorf("%s client: stream ended: %v", sharedProtos[i], s.Err())
		}
		got := string(s.Bytes())
		if want := "id: 1\ndata: before\n\nid: big\n\nid: 2\ndata: after\n\n"; !strings.HasSuffix(got, want) || len(got) > 200 {
			t.Errorf("%s client got %q, want the events around the cut one and its id alone, %q", sharedProtos[i], got, want)
		}
	}
	if d := metricValue(scrape(), cut) - m0; d != 1 {
		t.Errorf("%s went up by %v, want 1", cut, d)
	}
}

// clock is an upstream whose events are numbered by time, as a backend's
// own event log would be: event n is out when the clock has ticked n
// times. It takes 300ms to answer, then sends the events after the
// request's Last-Event-ID that are already out (all at once), then the new
// ones as they come.
type clock struct {
	now atomic.Int64
}

func newClock(t *testing.T, interval time.Duration) *clock {
	c := &clock{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				c.now.Add(1)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return c
}

func (c *clock) handler(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(300 * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	sseHeaders(w)
	sent, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if sent == 0 {
		sent = c.now.Load()
	}
	for {
		var b strings.Builder
		for ; sent < c.now.Load(); sent++ {
			fmt.Fprintf(&b, "id: %d\ndata: %d\n\n", sent+1, sent+1)
		}
		if b.Len() > 0 {
			write(w, b.String())
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
}

// A client holding an old id starts a shared stream, and up-to-date clients
// join while the upstream takes its time to answer: they must not get the
// first client's backlog. The hub's request carries no Last-Event-ID; each
// client's position is its own, and an id the (new, empty) replay buffer
// does not hold joins live.
func TestSharedStreamStartsWithoutTheFirstClientsPosition(t *testing.T) {
	testcaddy.LeakCheck(t)
	clk := newClock(t, 10*time.Millisecond)
	for clk.now.Load() < 100 {
		time.Sleep(10 * time.Millisecond)
	}
	up := newUpstream(t, clk.handler)
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n\tlast_event_id_query lastEventId\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	old := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {"3"}})
	// Up-to-date clients: each has the events up to 50ms ago (the
	// upstream sends an event up to 5ms after the clock reaches it).
	var current []*testcaddy.Stream
	var at []int64
	for i := 0; i < 5; i++ {
		n := clk.now.Load() - 5
		current = append(current, testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {strconv.FormatInt(n, 10)}}))
		at = append(at, n)
	}
	// One more with its id in the query, as an EventSource polyfill sends
	// it (the parameter is not part of the key).
	n := clk.now.Load() - 5
	current = append(current, testcaddy.Open(t, c, base+"/events?lastEventId="+strconv.FormatInt(n, 10), sseAccept))
	at = append(at, n)
	for i, s := range append(current, old) {
		waitSeq(t, s, 5)
		got := seq(t, s.Bytes())
		if i < len(at) && int64(got[0]) <= at[i] {
			t.Errorf("client %d, at event %d, got the events from %d again (%d duplicates)", i, at[i], got[0], at[i]-int64(got[0])+1)
		}
	}
	reqs := up.requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(reqs))
	}
	for _, r := range reqs {
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			t.Errorf("the shared upstream request carried a client's Last-Event-ID %q", id)
		}
		if strings.Contains(r.URL.RawQuery, "lastEventId") {
			t.Errorf("the shared upstream request carried a client's lastEventId parameter: %q", r.URL.RawQuery)
		}
	}
}

// corsByOrigin is an upstream that answers CORS itself, for the origins it
// allows, and says so with Vary: Origin.
func corsByOrigin(allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Origin")
		origin := r.Header.Get("Origin")
		for _, a := range allowed {
			if origin == a {
				w.Header().Set("Access-Control-Allow-Origin", origin)
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		for {
			write(w, "data: tick\n\n")
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// Without cors, the upstream's CORS fields reach the clients as they are:
// a client without Origin that starts the stream must not leave the
// browsers of an allowed origin without theirs, and one origin must never
// get another's. Each client gets the fields the upstream gives its own
// Origin.
func TestSharedClientsGetTheCORSFieldsOfTheirOwnOrigin(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, corsByOrigin("https://a.example", "https://b.example"))
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n}")
			c := testcaddy.Client(t, p)
			for _, origin := range []string{"", "https://a.example", "https://b.example", "https://evil.example", "https://a.example", ""} {
				header := http.Header{"Accept": {"text/event-stream"}}
				if origin != "" {
					header.Set("Origin", origin)
				}
				s := testcaddy.Open(t, c, base+"/events", header)
				s.WaitFor(t, "data: tick\n\n", wait)
				want := origin
				if origin == "https://evil.example" {
					want = ""
				}
				if got := s.Resp.Header.Get("Access-Control-Allow-Origin"); got != want {
					t.Errorf("client of origin %q got Access-Control-Allow-Origin %q, want %q", origin, got, want)
				}
			}
			if n := len(up.requests()); n != 4 {
				t.Errorf("upstream got %d requests, want 4 (one per origin, and one without)", n)
			}
		})
	}
}

// With cors, the proxy sets each client's CORS fields itself, so origins
// still share one upstream request.
func TestSharedClientsWithACORSPolicyShareAcrossOrigins(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, corsByOrigin("https://a.example"))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n\tcors https://a.example https://b.example\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	for _, origin := range []string{"https://a.example", "https://b.example", "https://evil.example"} {
		s := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Origin": {origin}})
		s.WaitFor(t, "data: tick\n\n", wait)
		want := origin
		if origin == "https://evil.example" {
			want = ""
		}
		if got := s.Resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("client of origin %q got Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

// pathEcho is an upstream that sends each request's target, as it got it,
// in its events.
func pathEcho(w http.ResponseWriter, r *http.Request) {
	sseHeaders(w)
	for {
		write(w, "data: "+r.RequestURI+"\n\n")
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
}

// The default key is the path as it goes upstream, escaped: /echo/z%2Fy
// and /echo/z/y are two requests and two streams. So are queries a parser
// would read alike after dropping what it cannot parse.
func TestSharedKeyUsesTheEscapedPathAndTheRawQuery(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, pathEcho)
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	for _, target := range []string{"/echo/z%2Fy", "/echo/z/y", "/echo/z%2Fy", "/echo?x=1;y", "/echo", "/echo?t=%zz"} {
		s := testcaddy.Open(t, c, base+target, sseAccept)
		s.WaitFor(t, "data: ", wait)
		events, _, _ := testcaddy.ParseEvents(s.Bytes())
		if len(events) == 0 {
			s.WaitFor(t, "\n\n", wait)
			events, _, _ = testcaddy.ParseEvents(s.Bytes())
		}
		if events[0].Data != target {
			t.Errorf("a client of %s got the stream of %s", target, events[0].Data)
		}
	}
	if n := len(up.requests()); n != 5 {
		t.Errorf("upstream got %d requests, want 5", n)
	}
}

// A first answer that is not a stream and stays open (a long poll, a
// misrouted page) reaches a shared client at once, status line and body as
// they come, as it would unshared.
func TestSharedClientGetsAnOpenNonStreamAnswerAtOnce(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var reqs atomic.Int32
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				reqs.Add(1)
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusOK)
				write(w, "first part\n")
				<-r.Context().Done()
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n}")
			c := testcaddy.Client(t, p)
			for i := 0; i < 2; i++ {
				type result struct {
					s   *testcaddy.Stream
					err error
				}
				done := make(chan result, 1)
				go func() {
					s, err := testcaddy.OpenErr(c, base+"/events", sseAccept)
					done <- result{s, err}
				}()
				var s *testcaddy.Stream
				select {
				case r := <-done:
					if r.err != nil {
						t.Fatal(r.err)
					}
					s = r.s
					t.Cleanup(s.Close)
				case <-time.After(wait):
					t.Fatalf("no status line within %v while the upstream's answer stays open", wait)
				}
				if s.Resp.StatusCode != 200 || s.Resp.Header.Get("Content-Type") != "text/plain" {
					t.Fatalf("got %d %q", s.Resp.StatusCode, s.Resp.Header.Get("Content-Type"))
				}
				s.WaitFor(t, "first part\n", wait)
			}
			// Such an answer is not shared with clients that come later.
			if n := reqs.Load(); n != 2 {
				t.Errorf("upstream got %d requests, want 2", n)
			}
		})
	}
}

// An event larger than client_buffer (and within max_event_size) reaches
// the clients that keep up, and evicts none of them.
func TestSharedEventLargerThanClientBufferEvictsNoOne(t *testing.T) {
	testcaddy.LeakCheck(t)
	big := strings.Repeat("x", 100<<10)
	h := func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		for n := 1; ; n++ {
			write(w, fmt.Sprintf("id: %d\ndata: %d\ndata: %s\n\n", n, n, big))
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
	base, scrape := sharedSiteWithMetrics(t, h, "share_linger 100ms", "client_buffer 16KiB")
	const evictions = "caddy_sse_proxy_slow_client_evictions_total"
	m0 := metricValue(scrape(), evictions)
	var streams []*testcaddy.Stream
	for _, p := range sharedProtos {
		streams = append(streams, testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", sseAccept))
	}
	for i, s := range streams {
		s.Wait(wait, func(b []byte, _ error) bool {
			events, _, _ := testcaddy.ParseEvents(b)
			return len(events) >= 5
		})
		if s.Err() != nil {
			events, _, _ := testcaddy.ParseEvents(s.Bytes())
			t.Fatalf("%s client: stream ended after %d events: %v", sharedProtos[i], len(events), s.Err())
		}
		seq(t, s.Bytes())
	}
	if d := metricValue(scrape(), evictions) - m0; d != 0 {
		t.Errorf("%v clients evicted, want none", d)
	}
}
