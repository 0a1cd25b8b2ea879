package sseproxy_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// broadcaster is a shared-friendly upstream: it counts requests and
// cancellations and sends numbered events (honouring Last-Event-ID) of
// size bytes every interval. The second data line starts with the time the
// event was sent (Unix nanoseconds), for latency checks.
type broadcaster struct {
	reqs, gone atomic.Int32
	interval   time.Duration
	size       int
}

func (b *broadcaster) handler(w http.ResponseWriter, r *http.Request) {
	b.reqs.Add(1)
	defer b.gone.Add(1)
	n, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	sseHeaders(w)
	pad := strings.Repeat("x", b.size)
	tick := time.NewTicker(b.interval)
	defer tick.Stop()
	for {
		n++
		write(w, fmt.Sprintf("id: %d\ndata: %d\ndata: %d %s\n\n", n, n, time.Now().UnixNano(), pad))
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

// echoing is an upstream that tells each request's field value to
// counted, then sends "data: for <value>" every 20ms: a stream that is
// different for every credential.
func echoing(field string, counted func(string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(field)
		counted(v)
		sseHeaders(w)
		for {
			write(w, "data: for "+v+"\n\n")
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// seq returns the event numbers a client got, checking they are
// consecutive (the first may be any: a client joins live).
func seq(t *testing.T, b []byte) []int {
	t.Helper()
	events, _, _ := testcaddy.ParseEvents(b)
	var out []int
	for _, e := range events {
		n, err := strconv.Atoi(strings.SplitN(e.Data, "\n", 2)[0])
		if err != nil || e.ID != strconv.Itoa(n) {
			t.Fatalf("bad event %+v", e)
		}
		if len(out) > 0 && n != out[len(out)-1]+1 {
			t.Fatalf("event %d after %d: lost or repeated", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out
}

func waitSeq(t *testing.T, s *testcaddy.Stream, n int) {
	t.Helper()
	if !s.Wait(wait, func(b []byte, _ error) bool {
		events, _, _ := testcaddy.ParseEvents(b)
		return len(events) >= n
	}) {
		t.Fatalf("fewer than %d events: %q (end %v)", n, s.Bytes(), s.Err())
	}
}

var sseAccept = http.Header{"Accept": {"text/event-stream"}}

// sharedProtos are the protocols shared streams are tested over: an
// HTTP/1.1 client's connection is taken over from net/http, an HTTP/2 or
// HTTP/3 client is served by its handler goroutine.
var sharedProtos = []testcaddy.Proto{testcaddy.H1, testcaddy.H2}

func TestHundredClientsShareOneUpstreamRequest(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) { hundredClientsShareOneUpstreamRequest(t, p) })
	}
}

func hundredClientsShareOneUpstreamRequest(t *testing.T, p testcaddy.Proto) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 20 * time.Millisecond}
	base := sharedSite(t, b, "", "share_linger 200ms")
	c := testcaddy.Client(t, p)
	var streams []*testcaddy.Stream
	for i := 0; i < 100; i++ {
		streams = append(streams, testcaddy.Open(t, c, base+"/prices?b=2&a=1", sseAccept))
	}
	for _, s := range streams {
		waitSeq(t, s, 5)
		seq(t, s.Bytes())
		if s.Resp.StatusCode != 200 || s.Resp.Header.Get("X-Accel-Buffering") != "no" {
			t.Fatalf("joining client got %d %v", s.Resp.StatusCode, s.Resp.Header)
		}
	}
	// Query order does not split a stream.
	s := testcaddy.Open(t, c, base+"/prices?a=1&b=2", sseAccept)
	waitSeq(t, s, 2)
	if n := b.reqs.Load(); n != 1 {
		t.Errorf("upstream got %d requests for 101 clients, want 1", n)
	}
	// A different path is a different stream.
	s = testcaddy.Open(t, c, base+"/scores", sseAccept)
	waitSeq(t, s, 1)
	if n := b.reqs.Load(); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

func TestClientsWithDifferentCredentialsNeverShare(t *testing.T) {
	testcaddy.LeakCheck(t)
	var mu sync.Mutex
	seen := map[string]int{}
	up := newUpstream(t, echoing("Authorization", func(v string) {
		mu.Lock()
		seen[v]++
		mu.Unlock()
	}))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 200ms\n\tauth_header Authorization \"Bearer {cookie.session}\"\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	for _, user := range []string{"alice", "bob", "alice", "bob", "carol"} {
		s := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Cookie": {"session=" + user}})
		s.WaitFor(t, "data: for Bearer "+user+"\n\n", wait)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen["Bearer alice"] != 1 || seen["Bearer bob"] != 1 || seen["Bearer carol"] != 1 {
		t.Errorf("upstream requests by credential: %v; want one each for alice, bob and carol", seen)
	}
}

// Without auth_header, the client's own cookie still keeps users apart: a
// backend that reads the session cookie makes each user's stream.
func TestClientsOwnCookiesKeepUsersApart(t *testing.T) {
	testcaddy.LeakCheck(t)
	var n atomic.Int32
	up := newUpstream(t, echoing("Cookie", func(string) { n.Add(1) }))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 200ms\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	for _, user := range []string{"alice", "bob", "alice"} {
		s := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Cookie": {"session=" + user}})
		s.WaitFor(t, "data: for session="+user+"\n\n", wait)
		if bytes.Contains(s.Bytes(), []byte("data: for session="+map[string]string{"alice": "bob", "bob": "alice"}[user])) {
			t.Fatalf("%s got another user's stream: %q", user, s.Bytes())
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("upstream got %d requests, want 2 (alice's shared by her two clients, and bob's)", got)
	}
}

func TestReconnectingClientGetsExactlyTheMissedEvents(t *testing.T) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 20 * time.Millisecond}
	base := sharedSite(t, b, "")
	c := testcaddy.Client(t, testcaddy.H2)
	keep := testcaddy.Open(t, c, base+"/events", sseAccept) // keeps the stream going
	first := testcaddy.Open(t, c, base+"/events", sseAccept)
	waitSeq(t, first, 5)
	got := seq(t, first.Bytes())
	first.Close()
	last := got[len(got)-1]
	waitSeq(t, keep, len(seq(t, keep.Bytes()))+10) // events go by meanwhile

	again := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {strconv.Itoa(last)}})
	waitSeq(t, again, 15)
	resumed := seq(t, again.Bytes())
	if resumed[0] != last+1 {
		t.Errorf("resumed at %d after %d: want exactly the missed events", resumed[0], last)
	}
	// An unknown id joins live.
	unknown := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {"nope"}})
	waitSeq(t, unknown, 2)
	if n := b.reqs.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

func TestLastClientLeavingCancelsUpstreamAfterLinger(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) { lastClientLeavingCancelsUpstreamAfterLinger(t, p) })
	}
}

func lastClientLeavingCancelsUpstreamAfterLinger(t *testing.T, p testcaddy.Proto) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 20 * time.Millisecond}
	base := sharedSite(t, b, "", "share_linger 500ms")
	c := testcaddy.Client(t, p)
	s := testcaddy.Open(t, c, base+"/events", sseAccept)
	waitSeq(t, s, 2)
	s.Close()
	// A quick reconnect, within the linger, gets the same upstream stream.
	time.Sleep(100 * time.Millisecond)
	s = testcaddy.Open(t, c, base+"/events", sseAccept)
	waitSeq(t, s, 2)
	if n := b.reqs.Load(); n != 1 {
		t.Fatalf("upstream got %d requests, want 1", n)
	}
	s.Close()
	left := time.Now()
	for b.gone.Load() == 0 {
		if time.Since(left) > wait {
			t.Fatal("upstream request not cancelled after the last client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(left); took < 400*time.Millisecond {
		t.Errorf("upstream cancelled %v after the last client left, before the 500ms linger", took)
	}
}

func TestStalledClientIsEvictedWhileOthersKeepUp(t *testing.T) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 5 * time.Millisecond, size: 16 << 10}
	up := newUpstream(t, b.handler)
	port, mport := testcaddy.FreePort(t), testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\tsse_proxy %s {\n\t\tshare\n\t\tshare_linger 200ms\n\t\tclient_buffer 256KiB\n\t}\n}\nhttp://localhost:%d {\n\tmetrics\n}\n",
		testcaddy.GlobalOptions, port, up.addr(), mport))
	addr := fmt.Sprintf("localhost:%d", port)
	// Two clients that keep reading, one per way of serving a client.
	var fast []*testcaddy.Stream
	for _, p := range sharedProtos {
		s := testcaddy.Open(t, testcaddy.Client(t, p), "https://"+addr+"/events", sseAccept)
		waitSeq(t, s, 2)
		fast = append(fast, s)
	}
	follower := follow(t, fast)

	stalledClient(t, addr)

	// It is evicted, and the fast clients are then the only subscribers (of
	// any stream: other tests' streams have no clients left).
	// (Counters are the process's: a test run with -count above 1 starts
	// from the previous run's values.)
	metric := metricsAt(t, mport)
	const (
		evictions = "caddy_sse_proxy_slow_client_evictions_total"
		evicted   = `caddy_sse_proxy_streams_ended_total{reason="evicted"}`
		subs      = "caddy_sse_proxy_shared_subscribers"
	)
	m0 := metric()
	deadline := time.Now().Add(wait)
	for m := m0; metricValue(m, evictions)-metricValue(m0, evictions) != 1 ||
		metricValue(m, evicted)-metricValue(m0, evicted) != 1 ||
		metricValue(m, subs) != 2 ||
		metricValue(m, "caddy_sse_proxy_shared_stream_subscribers_sum") != 2; m = metric() {
		if time.Now().After(deadline) {
			t.Fatalf("stalled client not evicted within %v: %s", wait, grepMetrics(m))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Meanwhile, and after, the fast clients get every event, in order,
	// and their latency stays flat: the bound is generous (a loaded test
	// machine), but a hub that waited for the stalled client would fail it.
	// The events are parsed once each as they come (follower): parsing the
	// whole of streams this fast again and again would load the machine
	// more than the proxy does.
	follower.waitEvents(t, follower.counts[0].Load()+100)
	worst := follower.finish()
	for _, s := range fast {
		seq(t, s.Bytes())
	}
	t.Logf("worst latency of a fast client: %v", worst)
	if worst > 2*time.Second {
		t.Errorf("a fast client's latency reached %v while the stalled one was evicted", worst)
	}
	if n := b.reqs.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

// follower follows streams of a broadcaster's events as they arrive,
// parsing each byte once: it counts the events of each stream and keeps
// the largest delay between an event's sending and its arrival (give or
// take the 5ms poll). Events that arrived before it began are not counted.
type follower struct {
	counts []atomic.Int64
	stop   chan struct{}
	done   chan time.Duration
	once   sync.Once
	worst  time.Duration
}

func follow(t *testing.T, streams []*testcaddy.Stream) *follower {
	t.Helper()
	f := &follower{counts: make([]atomic.Int64, len(streams)), stop: make(chan struct{}), done: make(chan time.Duration)}
	read := make([]int, len(streams)) // bytes up to the last complete event
	for i, s := range streams {
		read[i] = bytes.LastIndex(s.Bytes(), []byte("\n\n")) + 2
	}
	go func() {
		var worst time.Duration
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, s := range streams {
				b := s.BytesFrom(read[i])
				end := bytes.LastIndex(b, []byte("\n\n"))
				if end < 0 {
					continue
				}
				read[i] += end + 2
				events, _, _ := testcaddy.ParseEvents(b[:end+2])
				now := time.Now()
				for _, e := range events {
					lines := strings.SplitN(e.Data, "\n", 3)
					if len(lines) < 2 {
						continue
					}
					stamp, err := strconv.ParseInt(strings.SplitN(lines[1], " ", 2)[0], 10, 64)
					if err == nil {
						worst = max(worst, now.Sub(time.Unix(0, stamp)))
					}
				}
				f.counts[i].Add(int64(len(events)))
			}
			select {
			case <-tick.C:
			case <-f.stop:
				f.done <- worst
				return
			}
		}
	}()
	t.Cleanup(func() { f.finish() })
	return f
}

// waitEvents waits until every stream has n more events than when the
// follower began.
func (f *follower) waitEvents(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for i := range f.counts {
		for f.counts[i].Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("stream %d: %d events within %v, want %d", i, f.counts[i].Load(), wait, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// finish stops following and returns the largest delay seen.
func (f *follower) finish() time.Duration {
	f.once.Do(func() {
		close(f.stop)
		f.worst = <-f.done
	})
	return f.worst
}

func TestReloadKeepsTheSharedUpstreamStream(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) { reloadKeepsTheSharedUpstreamStream(t, p) })
	}
}

func reloadKeepsTheSharedUpstreamStream(t *testing.T, p testcaddy.Proto) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 20 * time.Millisecond}
	up := newUpstream(t, b.handler)
	port := testcaddy.FreePort(t)
	config := func(retry string) string {
		return fmt.Sprintf("%shttps://localhost:%d {\n\ttls {CERT} {KEY}\n\tsse_proxy %s {\n\t\tshare\n\t\tretry %s\n\t}\n}\n",
			testcaddy.GlobalOptions, port, up.addr(), retry)
	}
	testcaddy.Start(t, config("1s"))
	url := fmt.Sprintf("https://localhost:%d/events", port)
	c := testcaddy.Client(t, p)
	s := testcaddy.Open(t, c, url, sseAccept)
	waitSeq(t, s, 5)

	testcaddy.Reload(t, config("2s"))
	s.WaitEnd(t, wait) // the reload ends the client's stream, with a retry hint
	got := seq(t, s.Bytes())
	last := got[len(got)-1]

	// The browser comes back with Last-Event-ID after the hint's delay (a
	// request sent at once could still reach the old config on its HTTP/2
	// connection, which would end it at once with another hint), to the new
	// config and the same upstream stream's replay buffer.
	_, _, retry := testcaddy.ParseEvents(s.Bytes())
	if retry < 1000 || retry > 2000 {
		t.Fatalf("reload ended the stream with retry %d, want 1000–2000", retry)
	}
	time.Sleep(time.Duration(retry) * time.Millisecond)
	again := testcaddy.Open(t, c, url, http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {strconv.Itoa(last)}})
	waitSeq(t, again, 5)
	if resumed := seq(t, again.Bytes()); resumed[0] != last+1 {
		t.Errorf("resumed at %d after %d", resumed[0], last)
	}
	if !strings.HasPrefix(string(again.Bytes()), "retry: 2000\n") {
		t.Errorf("not served by the new config: %q", again.Bytes()[:20])
	}
	if n := b.reqs.Load(); n != 1 {
		t.Errorf("upstream got %d requests across the reload, want 1", n)
	}
}

// stalledClient opens a stream that is never read: HTTP/1.1 over TLS on a
// connection with a small receive buffer, which sends its request and
// nothing more. It returns the TCP connection under the TLS.
func stalledClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetReadBuffer(4 << 10)
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", addr)
	return raw
}

// metricValue is the value of the metric line that starts with name, or 0.
func metricValue(m, name string) float64 {
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func grepMetrics(m string) string {
	var out []string
	for _, l := range strings.Split(m, "\n") {
		if strings.HasPrefix(l, "caddy_sse_proxy") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
