package sseproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// Tests of input that crosses a trust boundary: what a client puts in its
// request and what an upstream puts in its events.

// getStatus sends a GET with Accept: text/event-stream and returns the
// status and the body's first bytes (a stream is not read to its end).
func getStatus(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := io.ReadAtLeast(resp.Body, b, 1)
	return resp.StatusCode, string(b[:n])
}

func TestControlBytesFromTheClientAre400AndLeaveTheUpstreamHealthy(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("id: 1\ndata: hello\n\n", time.Minute))
	// Passive health checks: three failures within 20s mark the one
	// upstream down, and every client would get a 503.
	base := startSite(t, "sse_proxy "+up.addr()+` {
		auth_header X-Api-Key {query.token}
		last_event_id_query lastEventId
		reconnect 20ms 50ms
		fail_duration 20s
		max_fails 3
	}`)
	c := testcaddy.Client(t, testcaddy.H2)
	for _, tc := range []struct{ query, names string }{
		{"token=SECRET%01", "auth_header X-Api-Key"},
		{"token=SECRET%7F", "auth_header X-Api-Key"},
		{"token=ok&lastEventId=a%01b", "last_event_id_query lastEventId"},
	} {
		for range 3 {
			status, body := getStatus(t, c, base+"/events?"+tc.query)
			if status != http.StatusBadRequest || !strings.Contains(body, tc.names) || strings.Contains(body, "SECRET") {
				t.Fatalf("?%s: got %d %q; want a 400 that names %q and not the value", tc.query, status, body, tc.names)
			}
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("the upstream got %d requests for bad input; want none", n)
	}
	// The upstream is still healthy: a good request streams.
	s := testcaddy.Open(t, c, base+"/events?token=ok&lastEventId=7", http.Header{"Accept": {"text/event-stream"}})
	if s.Resp.StatusCode != http.StatusOK {
		t.Fatalf("a good request got %d after the bad ones; want 200", s.Resp.StatusCode)
	}
	s.WaitFor(t, "data: hello\n\n", wait)
	reqs := up.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("X-Api-Key") != "ok" || reqs[0].Header.Get("Last-Event-ID") != "7" {
		t.Errorf("upstream requests %d, first %v", len(reqs), reqs)
	}
}

func TestUpstreamIDThatNoHeaderCanCarryIsMaskedAndReconnectsResumeFromTheLastValidID(t *testing.T) {
	for _, p := range []testcaddy.Proto{testcaddy.H1, testcaddy.H2} {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var n atomic.Int32
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				switch n.Add(1) {
				case 1:
					// The bad id arrives split across writes; then the
					// response ends and the proxy asks again.
					sseHeaders(w)
					for _, s := range []string{"id: 1\ndata: one\n\n", "id: a", "\x01b\ndata: two\n\n"} {
						write(w, s)
					}
				default:
					script("id: 3\ndata: three\n\n", time.Minute)(w, r)
				}
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\treconnect 20ms 50ms\n\theartbeat off\n}")
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", http.Header{"Accept": {"text/event-stream"}})
			if !s.Wait(wait, func(b []byte, _ error) bool { return bytes.Contains(b, []byte("data: three\n\n")) }) {
				var ids []string
				for _, r := range up.requests() {
					ids = append(ids, r.Header.Get("Last-Event-ID"))
				}
				t.Fatalf("no reconnect within %v: got %q; upstream requests with Last-Event-ID %q", wait, s.Bytes(), ids)
			}
			got := s.Bytes()
			if want := "id: 1\ndata: one\n\nid: a\x00b\ndata: two\n\nid: 3\ndata: three\n\n"; string(got) != want {
				t.Errorf("client got %q, want %q", got, want)
			}
			// What an EventSource makes of it: the masked id is ignored,
			// so the browser would reconnect with the last valid one.
			events, _, _ := testcaddy.ParseEvents(got)
			if len(events) != 3 || events[1].ID != "1" {
				t.Errorf("events %+v; want the second event to keep id 1", events)
			}
			reqs := up.requests()
			if len(reqs) != 2 || reqs[1].Header.Get("Last-Event-ID") != "1" {
				t.Fatalf("%d upstream requests; want a reconnect with Last-Event-ID 1", len(reqs))
			}
			// A browser reconnecting with the id it holds is served.
			s2 := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {events[1].ID}})
			if s2.Resp.StatusCode != http.StatusOK {
				t.Errorf("browser reconnect: %d", s2.Resp.StatusCode)
			}
		})
	}
}

// logOptions is testcaddy.GlobalOptions with every logger at debug level,
// written as JSON to file.
func logOptions(file string) string {
	return strings.Replace(testcaddy.GlobalOptions, "\tlog {\n\t\tlevel WARN\n\t}",
		"\tlog {\n\t\toutput file "+file+"\n\t\tformat json\n\t\tlevel DEBUG\n\t}", 1)
}

func TestQueryTokenReachesNoLogLine(t *testing.T) {
	testcaddy.LeakCheck(t)
	var n atomic.Int32
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			http.Error(w, "down", http.StatusServiceUnavailable) // retried
		case 2:
			// Breaks mid-event: reverse_proxy aborts, the proxy reconnects.
			sseHeaders(w)
			write(w, "id: 1\ndata: one\n\nid: 2\ndata: tw")
			panic(http.ErrAbortHandler)
		default:
			script("id: 2\ndata: two\n\n", time.Minute)(w, r)
		}
	})
	dir := t.TempDir()
	logFile, accessFile := filepath.Join(dir, "caddy.log"), filepath.Join(dir, "access.log")
	port := testcaddy.FreePort(t)
	testcaddy.Start(t, fmt.Sprintf(`%shttps://localhost:%d {
	tls {CERT} {KEY}
	log {
		output file %s
		format filter {
			request>uri query {
				delete token
			}
		}
	}
	sse_proxy %s {
		auth_header Authorization "Bearer {query.token}"
		reconnect 20ms 50ms
	}
}
`, logOptions(logFile), port, accessFile, up.addr()))
	base := fmt.Sprintf("https://localhost:%d", port)
	for _, p := range testcaddy.Protos {
		c := testcaddy.Client(t, p)
		s, err := testcaddy.OpenErr(c, base+"/events?a=1&token=SECRET", http.Header{"Accept": {"text/event-stream"}})
		if err != nil {
			t.Fatal(err)
		}
		s.WaitFor(t, "data: two\n\n", wait)
		s.Close() // the client leaves mid-stream: reverse_proxy logs it
		n.Store(0)
	}
	// The lines of the client that left come after the handler returns.
	deadline := time.Now().Add(wait)
	for {
		b, _ := os.ReadFile(logFile)
		if bytes.Contains(b, []byte("aborting with incomplete response")) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, f := range []string{logFile, accessFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines++
			if bytes.Contains(sc.Bytes(), []byte("SECRET")) {
				t.Errorf("%s: a log line holds the token: %s", filepath.Base(f), sc.Bytes())
			}
		}
	}
	// The log is there and says what the test made happen.
	all, _ := os.ReadFile(logFile)
	for _, want := range []string{`"logger":"http.handlers.reverse_proxy"`, "upstream roundtrip", "aborting with incomplete response", `"uri":"/events?a=1"`} {
		if !bytes.Contains(all, []byte(want)) {
			t.Errorf("the debug log has no %s; lines: %d", want, lines)
		}
	}
	access, _ := os.ReadFile(accessFile)
	if !bytes.Contains(access, []byte("handled request")) {
		t.Errorf("the access log has no request: %q", access)
	}
}

// fat is an upstream that writes 16 KiB events as fast as the proxy takes
// them, counts the bytes written, and closes done when its one response is
// over.
func fat(written *atomic.Int64, done chan<- struct{}) http.HandlerFunc {
	event := []byte("data: " + strings.Repeat("x", 16<<10) + "\n\n")
	return func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		sseHeaders(w)
		for r.Context().Err() == nil {
			n, err := w.Write(event)
			written.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

func TestStopDoesNotWaitForAClientThatStoppedReading(t *testing.T) {
	for _, p := range []testcaddy.Proto{testcaddy.H1, testcaddy.H2} {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var written atomic.Int64
			upDone := make(chan struct{})
			up := newUpstream(t, fat(&written, upDone))
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\theartbeat 100ms\n}")
			// The client reads the header and then nothing: the socket
			// buffers (or HTTP/2 flow control windows) fill up and a
			// write to it blocks.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := testcaddy.Client(t, p).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			// Stuck: the upstream's writes stop advancing.
			last, since := int64(-1), time.Now()
			for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
				if w := written.Load(); w != last {
					last, since = w, time.Now()
				}
				if time.Since(since) > 500*time.Millisecond {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the upstream kept writing (%d bytes): the client's writes never blocked", last)
				}
			}
			// caddy.Stop returns at once and the servers shut down in the
			// background, waiting for every handler: the stream's is done
			// when the upstream request is over.
			start := time.Now()
			if err := caddy.Stop(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-upDone:
				took := time.Since(start)
				if took > 5*time.Second {
					t.Errorf("the stream ended %v after Caddy was stopped, with one stalled %s client; want about a second", took, p)
				}
				t.Logf("the stream ended %v after the stop, with one stalled %s client after %d bytes", took, p, last)
			case <-time.After(90 * time.Second):
				t.Errorf("the stream still runs 90s after Caddy was stopped, with one stalled %s client", p)
			}
		})
	}
}
