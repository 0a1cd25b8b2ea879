package sseproxy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// goroutinesIn counts the running goroutines whose stack has fn in it.
func goroutinesIn(fn string) int {
	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// sharedSite starts b as the upstream and a Caddy site that shares it,
// with the given sse_proxy subdirectives after share (one per line), and
// the given site directives before sse_proxy.
func sharedSite(t *testing.T, b *broadcaster, site string, subdirectives ...string) string {
	t.Helper()
	up := newUpstream(t, b.handler)
	block := "\tshare\n"
	for _, d := range subdirectives {
		block += "\t" + d + "\n"
	}
	return startSite(t, site+"sse_proxy "+up.addr()+" {\n"+block+"}")
}

// rawRequest sends a GET for the stream in the given HTTP version on a TLS
// connection of its own and reads the response header.
func rawRequest(t *testing.T, base, version string) (net.Conn, *http.Response) {
	t.Helper()
	addr := strings.TrimPrefix(base, "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /events %s\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", version, addr)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, resp
}

const (
	handlerFrame = "caddy-sse-proxy.(*Handler).ServeHTTP"
	watchFrame   = "caddy-sse-proxy/share.(*connClient).watch"
)

// An HTTP/1.1 client of a shared stream is served on its own connection,
// taken over from net/http: no handler goroutine stays for it, only a
// goroutine that waits for the client to go, and the stream is an ordinary
// chunked response that says the connection closes after it. Heartbeats
// still flow between events.
func TestSharedHTTP1ClientsKeepNoHandlerGoroutine(t *testing.T) {
	testcaddy.LeakCheck(t)
	b := &broadcaster{interval: 400 * time.Millisecond}
	base := sharedSite(t, b, "", "share_linger 100ms", "heartbeat 100ms", "retry 1500ms")
	c := testcaddy.Client(t, testcaddy.H1)
	const clients = 20
	var streams []*testcaddy.Stream
	for i := 0; i < clients; i++ {
		streams = append(streams, testcaddy.Open(t, c, base+"/events", sseAccept))
	}
	for _, s := range streams {
		waitSeq(t, s, 2)
		s.WaitFor(t, ":\n", wait) // a heartbeat, between events
		seq(t, testcaddy.StripHeartbeats(s.Bytes()))
		if !strings.HasPrefix(string(s.Bytes()), "retry: 1500\n") {
			t.Fatalf("stream does not start with the retry field: %q", s.Bytes())
		}
		if !s.Resp.Close || len(s.Resp.TransferEncoding) != 1 || s.Resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("want a chunked response with Connection: close, got close=%v te=%v", s.Resp.Close, s.Resp.TransferEncoding)
		}
	}
	if n := goroutinesIn(handlerFrame); n != 0 {
		t.Errorf("%d handler goroutines still running for %d shared HTTP/1.1 clients, want 0", n, clients)
	}
	if n := goroutinesIn(watchFrame); n != clients {
		t.Errorf("%d connection watchers for %d clients, want one each", n, clients)
	}
	if n := b.reqs.Load(); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}

	// A client that leaves is noticed at once, without a write to it.
	streams[0].Close()
	deadline := time.Now().Add(wait)
	for goroutinesIn(watchFrame) != clients-1 {
		if time.Now().After(deadline) {
			t.Fatalf("a closed client's watcher still runs after %v", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The same path over HTTP/2 keeps its handler (and so serves as the proof
// that the HTTP/1.1 count above can fail).
func TestSharedHTTP2ClientsKeepTheirHandler(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 50 * time.Millisecond}, "", "share_linger 100ms")
	c := testcaddy.Client(t, testcaddy.H2)
	for i := 0; i < 5; i++ {
		waitSeq(t, testcaddy.Open(t, c, base+"/events", sseAccept), 1)
	}
	if n := goroutinesIn(handlerFrame); n != 5 {
		t.Errorf("%d handler goroutines for 5 HTTP/2 clients, want 5", n)
	}
	if n := goroutinesIn(watchFrame); n != 0 {
		t.Errorf("%d connection watchers for HTTP/2 clients, want 0", n)
	}
}

// A taken-over stream still ends the ways a stream ends: at max_age with a
// retry hint and a clean end of the chunked body, and on reload (tested with
// the reload test over HTTP/1.1).
func TestSharedHTTP1ClientEndsAtMaxAge(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 20 * time.Millisecond}, "", "share_linger 100ms", "max_age 300ms", "retry 1s")
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H1), base+"/events", sseAccept)
	start := time.Now()
	if err := s.WaitEnd(t, wait); err != io.EOF {
		t.Fatalf("stream ended with %v, want a clean end of the chunked body", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("ended after %v, before max_age 300ms", took)
	}
	got := s.Bytes()
	_, _, retry := testcaddy.ParseEvents(got)
	// The hint is one line after the last event's empty line (see RetryLine).
	tail := string(got[strings.LastIndex(string(got), "\n\n")+2:])
	if retry < 1000 || retry > 2000 || !strings.HasPrefix(tail, "retry: ") || strings.Count(tail, "\n") != 1 || !strings.HasSuffix(tail, "\n") {
		t.Errorf("ended with retry %d (want 1000–2000), after %q", retry, got[max(0, len(got)-60):])
	}
	seq(t, got)
}

// An HTTP/1.0 client gets a body that ends when the connection closes (it
// has no chunked coding), with the same events.
func TestSharedHTTP10ClientGetsACloseDelimitedBody(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 20 * time.Millisecond}, "", "share_linger 100ms", "max_age 300ms")
	_, resp := rawRequest(t, base, "HTTP/1.0")
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 || resp.ContentLength != -1 {
		t.Fatalf("got %d te=%v length=%d, want 200 with a body up to the close", resp.StatusCode, resp.TransferEncoding, resp.ContentLength)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading to the close: %v after %q", err, body)
	}
	if len(seq(t, body)) < 3 {
		t.Errorf("too few events before max_age: %q", body)
	}
}

// Bytes a client sends after its request are read and dropped; a client
// that keeps sending is cut off.
func TestSharedHTTP1ClientThatKeepsSendingIsCutOff(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 50 * time.Millisecond}, "", "share_linger 100ms")
	conn, resp := rawRequest(t, base, "HTTP/1.1")
	if resp.StatusCode != 200 {
		t.Fatalf("answer %v", resp)
	}
	go func() {
		junk := make([]byte, 1024)
		for i := 0; i < 64; i++ {
			if _, err := conn.Write(junk); err != nil {
				return
			}
		}
	}()
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Log("body ended cleanly") // either way it ended; a timeout would not
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a client sending junk was not cut off within %v", wait)
	}
}

// With an access log, Caddy's response recorder wraps the writer; the
// connection is still taken from net/http itself, not through the recorder
// (whose wrapped connection would keep net/http's buffers alive and count
// bytes the log reads concurrently; -race would flag that).
func TestSharedHTTP1ClientsWithAnAccessLog(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 5 * time.Millisecond}, "log {\n\toutput discard\n}\n", "share_linger 100ms")
	c := testcaddy.Client(t, testcaddy.H1)
	var streams []*testcaddy.Stream
	for i := 0; i < 5; i++ {
		streams = append(streams, testcaddy.Open(t, c, base+"/events", sseAccept))
	}
	for _, s := range streams {
		waitSeq(t, s, 20)
	}
	if n := goroutinesIn(watchFrame); n != 5 {
		t.Errorf("%d connection watchers for 5 clients, want 5", n)
	}
	if n := goroutinesIn("caddyhttp.(*hijackedConn)"); n != 0 {
		t.Errorf("%d goroutines use the recorder's wrapped connection, want 0", n)
	}
}

// A client that sends junk while a write to it is stuck (it stopped
// reading, and client_buffer is too large for eviction to come first) is
// still cut off at once: the watcher closes the connection before it takes
// the writer's lock, which the stuck write holds.
func TestSharedHTTP1ClientCutOffWhileAWriteToItIsStuck(t *testing.T) {
	testcaddy.LeakCheck(t)
	base := sharedSite(t, &broadcaster{interval: 5 * time.Millisecond, size: 64 << 10}, "", "share_linger 100ms", "client_buffer 1GiB")
	raw := stalledClient(t, strings.TrimPrefix(base, "https://"))
	deadline := time.Now().Add(wait)
	for goroutinesIn(watchFrame) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the client was not taken over")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// 12.8 MB/s against a client that reads nothing: within two seconds
	// every buffer on the way is full and the write to it is stuck.
	time.Sleep(2 * time.Second)
	if _, err := raw.Write(make([]byte, 8<<10)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for goroutinesIn(watchFrame) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that sent 8 KiB was not cut off within 5s while a write to it was stuck")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
