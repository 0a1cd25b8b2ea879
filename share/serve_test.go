package share

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// Serve from the client's side: each way a shared client's handler can
// end, and whether the client left its hub on it (exactly when its handler
// still owns it: not when its connection was taken over).

// streamWriter stands in for an HTTP/2 response: it cannot hand its
// connection over, so Serve keeps the client on the caller's goroutine.
type streamWriter struct {
	header  http.Header
	wrote   chan struct{} // a token after each write of body bytes
	panicOn string        // "WriteHeader" or "Flush": that call panics with errBoom

	// stuck, when set, makes every body write wait until the write
	// deadline is set (by an eviction), and then fail.
	stuck   bool
	cut     chan struct{}
	cutOnce sync.Once
	mu      sync.Mutex // guards body
	body    bytes.Buffer
}

var errBoom = errors.New("boom")

func newStreamWriter() *streamWriter {
	return &streamWriter{header: http.Header{}, wrote: make(chan struct{}, 1000), cut: make(chan struct{})}
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(int) {
	if w.panicOn == "WriteHeader" {
		panic(errBoom)
	}
}

func (w *streamWriter) Flush() {
	if w.panicOn == "Flush" {
		panic(errBoom)
	}
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.stuck {
		<-w.cut
		return 0, os.ErrDeadlineExceeded
	}
	w.mu.Lock()
	w.body.Write(p)
	w.mu.Unlock()
	w.wrote <- struct{}{}
	return len(p), nil
}

// SetWriteDeadline is what an eviction calls (through
// http.ResponseController) to cut a stuck write short.
func (w *streamWriter) SetWriteDeadline(time.Time) error {
	w.cutOnce.Do(func() { close(w.cut) })
	return nil
}

func (w *streamWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

// serveOptions is a shared client's options for a stream request to path.
func serveOptions(cfg *Config, next caddyhttp.Handler, path string) *Options {
	up := httptest.NewRequest(http.MethodGet, path, nil)
	up.Header.Set("Accept", "text/event-stream")
	return &Options{Config: cfg, Upstream: up, Next: next, Hint: func() []byte { return nil }, Grace: time.Second}
}

// served is how a Serve call ended.
type served struct {
	err      error
	panicked any
}

// serveAsync runs Serve for a client on its own goroutine, as a handler
// would, and reports how it ended.
func serveAsync(ctx context.Context, w http.ResponseWriter, o *Options) <-chan served {
	done := make(chan served, 1)
	go func() {
		var s served
		sw := proxy.NewWriter(w, &proxy.Options{}, "", func() {})
		defer func() {
			s.panicked = recover()
			sw.Close()
			done <- s
		}()
		s.err = Serve(ctx, w, sw, o)
	}()
	return done
}

func await(t *testing.T, done <-chan served) served {
	t.Helper()
	select {
	case s := <-done:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still runs 10s on")
		return served{}
	}
}

// waitSubs waits until h has n clients.
func waitSubs(t *testing.T, h *Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := subCount(h); got == n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("the hub has %d clients 10s on, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func subCount(h *Hub) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// silentUpstream never answers, until its request ends.
var silentUpstream = caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
	<-r.Context().Done()
	return nil
})

// startHub starts the hub of o's key with a client of the test's own, which
// stays: the served client is the hub's second.
func startHub(t *testing.T, o *Options) *Hub {
	t.Helper()
	h, s := Join(o.key(), o.Config, o.Upstream, nil, o.Next, nil, "")
	t.Cleanup(func() {
		h.Leave(s)
		h.close()
	})
	return h
}

// A client that goes before the upstream answers leaves the hub, and its
// handler returns with no error.
func TestServeLeavesWhenTheClientGoesBeforeTheAnswer(t *testing.T) {
	o := serveOptions(testConfig(), silentUpstream, "/serve-gone-waiting")
	h := startHub(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := serveAsync(ctx, newStreamWriter(), o)
	waitSubs(t, h, 2)
	cancel()
	if s := await(t, done); s.err != nil || s.panicked != nil {
		t.Fatalf("Serve ended with %v, panic %v; want nil", s.err, s.panicked)
	}
	if n := subCount(h); n != 1 {
		t.Errorf("the hub has %d clients after one left, want 1", n)
	}
}

// A hub that ends without an answer gives its client a 502, and the client
// leaves it.
func TestServeAnswers502AndLeavesWhenTheHubEndsWithoutAnAnswer(t *testing.T) {
	o := serveOptions(testConfig(), silentUpstream, "/serve-no-answer")
	h := startHub(t, o)
	done := serveAsync(context.Background(), newStreamWriter(), o)
	waitSubs(t, h, 2)
	h.close()
	s := await(t, done)
	var he caddyhttp.HandlerError
	if !errors.As(s.err, &he) || he.StatusCode != http.StatusBadGateway || s.panicked != nil {
		t.Fatalf("Serve ended with %v, panic %v; want a 502", s.err, s.panicked)
	}
	if n := subCount(h); n != 1 {
		t.Errorf("the hub has %d clients after the 502, want 1", n)
	}
}

// A panic while the header goes out (the client's response broke) passes
// through Serve, and the client leaves the hub on the way.
func TestServeLeavesWhenSendingTheHeaderPanics(t *testing.T) {
	for _, call := range []string{"WriteHeader", "Flush"} {
		t.Run(call, func(t *testing.T) {
			up := newFakeUpstream()
			o := serveOptions(testConfig(), up, "/serve-header-panics-"+call)
			h := startHub(t, o)
			w := newStreamWriter()
			w.panicOn = call
			s := await(t, serveAsync(context.Background(), w, o))
			if s.panicked != errBoom {
				t.Fatalf("Serve ended with %v, panic %v; want the writer's panic", s.err, s.panicked)
			}
			if n := subCount(h); n != 1 {
				t.Errorf("the hub has %d clients after the panic, want 1", n)
			}
		})
	}
}

// A client evicted as too slow has its response aborted
// (http.ErrAbortHandler), and leaves the hub.
func TestServeLeavesWhenTheClientIsEvicted(t *testing.T) {
	up := newFakeUpstream()
	o := serveOptions(testConfig(), up, "/serve-evicted")
	h := startHub(t, o)
	w := newStreamWriter()
	w.stuck = true
	done := serveAsync(context.Background(), w, o)
	waitSubs(t, h, 2)
	<-h.Ready()
	// client_buffer is 1 KiB: the first write sticks, the queue fills.
	go func() {
		for id := 1; id <= 200; id++ {
			select {
			case up.feed <- strings.Repeat("data: x\n", 8) + "\n":
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	s := await(t, done)
	if s.panicked != http.ErrAbortHandler {
		t.Fatalf("Serve ended with %v, panic %v; want http.ErrAbortHandler", s.err, s.panicked)
	}
	if n := subCount(h); n != 1 {
		t.Errorf("the hub has %d clients after the eviction, want 1", n)
	}
}

// A client that leaves mid-stream, or whose stream ends with the hub,
// leaves the hub.
func TestServeLeavesWhenTheStreamEnds(t *testing.T) {
	for _, how := range []string{"client gone", "hub over"} {
		t.Run(how, func(t *testing.T) {
			up := newFakeUpstream()
			o := serveOptions(testConfig(), up, "/serve-ends-"+strings.ReplaceAll(how, " ", "-"))
			h := startHub(t, o)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := newStreamWriter()
			done := serveAsync(ctx, w, o)
			waitSubs(t, h, 2)
			up.send(t, 1)
			for !strings.Contains(w.String(), "data: 1\n\n") {
				select {
				case <-w.wrote:
				case <-time.After(10 * time.Second):
					t.Fatalf("got %q 10s on, want event 1", w.String())
				}
			}
			if how == "client gone" {
				cancel()
			} else {
				h.close()
			}
			if s := await(t, done); s.err != nil || s.panicked != nil {
				t.Fatalf("Serve ended with %v, panic %v; want nil", s.err, s.panicked)
			}
			if n := subCount(h); n != 1 {
				t.Errorf("the hub has %d clients after the stream ended, want 1", n)
			}
		})
	}
}

// An HTTP/1.1 client's connection is taken over: the handler returns at
// once, and the client stays in the hub, getting the events that come
// after, until its connection goes.
func TestServeLeavesATakenOverClientToItsConnection(t *testing.T) {
	up := newFakeUpstream()
	cfg := testConfig()
	keys := make(chan string, 1)
	returned := make(chan served, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := &Options{Config: cfg, Upstream: r, Next: up, Hint: func() []byte { return nil }, Grace: time.Second}
		keys <- o.key()
		sw := proxy.NewWriter(w, &proxy.Options{}, "", func() {})
		var s served
		defer func() {
			s.panicked = recover()
			sw.Close()
			returned <- s
		}()
		s.err = Serve(r.Context(), w, sw, o)
	}))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/serve-taken-over", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if s := await(t, returned); s.err != nil || s.panicked != nil {
		t.Fatalf("the handler ended with %v, panic %v; want nil", s.err, s.panicked)
	}
	if res.Header.Get("Connection") != "close" && !res.Close {
		t.Errorf("the header does not close the connection: %v", res.Header)
	}
	h := registered(<-keys)
	if h == nil {
		t.Fatal("no hub for the client's key")
	}
	defer h.close()
	if n := subCount(h); n != 1 {
		t.Fatalf("the hub has %d clients once the handler returned, want its connection's 1", n)
	}
	up.send(t, 1)
	line := make(chan string, 1)
	go func() {
		br := bufio.NewReader(res.Body)
		var got strings.Builder
		for !strings.Contains(got.String(), "data: 1\n") {
			l, err := br.ReadString('\n')
			got.WriteString(l)
			if err != nil {
				break
			}
		}
		line <- got.String()
	}()
	select {
	case got := <-line:
		if !strings.Contains(got, "data: 1\n") {
			t.Fatalf("the taken-over client got %q, want event 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event 1 on the taken-over connection 10s on")
	}
	res.Body.Close()
	waitSubs(t, h, 0)
}

// serveFresh serves a client whose upstream request (the handler's shaped
// copy) no one else holds, and closes freed once that request is garbage.
//
//go:noinline
func serveFresh(ctx context.Context, w http.ResponseWriter, cfg *Config, next caddyhttp.Handler, path string, freed chan struct{}) {
	o := serveOptions(cfg, next, path)
	runtime.SetFinalizer(o.Upstream, func(*http.Request) { close(freed) })
	sw := proxy.NewWriter(w, &proxy.Options{}, "", func() {})
	defer sw.Close()
	_ = Serve(ctx, w, sw, o)
}

// A kept client (HTTP/2, HTTP/3) that waits for events holds no copy of
// its request: the options it was served with are garbage once the header
// went out.
func TestServeKeepsNoCopyOfTheRequestWhileTheClientWaits(t *testing.T) {
	up := newFakeUpstream()
	cfg := testConfig()
	const path = "/serve-no-copy"
	h := startHub(t, serveOptions(cfg, up, path))
	<-h.Ready()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newStreamWriter()
	freed := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		serveFresh(ctx, w, cfg, up, path, freed)
	}()
	waitSubs(t, h, 2)
	up.send(t, 1)
	for !strings.Contains(w.String(), "data: 1\n\n") {
		select {
		case <-w.wrote:
		case <-time.After(10 * time.Second):
			t.Fatalf("got %q 10s on, want event 1", w.String())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for freedYet := false; !freedYet; {
		runtime.GC()
		select {
		case <-freed:
			freedYet = true
		case <-time.After(20 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("the client's upstream request is still held 10s after its header went out")
			}
		}
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still runs 10s after the client left")
	}
}
