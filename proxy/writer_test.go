package proxy

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// recorder is an http.ResponseWriter that keeps each write, and whether it
// came from a heartbeat tick, plus the flushes.
type recorder struct {
	mu       sync.Mutex
	header   http.Header
	code     int
	writes   []recorded
	flushes  int
	inTick   bool
	flushedH bool // header flushed before any body byte
}

type recorded struct {
	b         []byte
	heartbeat bool
}

func newRecorder() *recorder { return &recorder{header: make(http.Header)} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.writes = append(r.writes, recorded{bytes.Clone(p), r.inTick})
	return len(p), nil
}
func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.code != 0 && len(r.writes) == 0 {
		r.flushedH = true
	}
	r.flushes++
}

func (r *recorder) body() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, w := range r.writes {
		b.Write(w.b)
	}
	return b.String()
}

func startStream(t testing.TB, opts *Options, upstreamHeader http.Header) (*Writer, *recorder, *bool) {
	t.Helper()
	rec := newRecorder()
	cancelled := false
	w := NewWriter(rec, opts, "https://app.example.com", func() { cancelled = true })
	for k, v := range upstreamHeader {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/event-stream")
	}
	w.WriteHeader(http.StatusOK)
	t.Cleanup(w.Close)
	return w, rec, &cancelled
}

// forceTick runs a heartbeat tick as if the stream had been idle for long.
func forceTick(w *Writer, rec *recorder) {
	w.mu.Lock()
	w.last = time.Time{}
	w.mu.Unlock()
	rec.mu.Lock()
	rec.inTick = true
	rec.mu.Unlock()
	w.tick()
	rec.mu.Lock()
	rec.inTick = false
	rec.mu.Unlock()
}

func TestStreamHeaderIsCleanedAndSentAtOnce(t *testing.T) {
	_, rec, _ := startStream(t, &Options{Heartbeat: time.Hour}, http.Header{
		"Content-Type":      {"Text/Event-Stream; charset=utf-8"},
		"Connection":        {"keep-alive, X-Hop"},
		"X-Hop":             {"1"},
		"Keep-Alive":        {"timeout=5"},
		"Proxy-Connection":  {"keep-alive"},
		"Transfer-Encoding": {"chunked"},
		"Upgrade":           {"h2c"},
		"Te":                {"trailers"},
		"Content-Length":    {"100"},
		"X-Kept":            {"yes"},
	})
	h := rec.header
	for _, k := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Content-Length"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s still in the header: %q", k, h[k])
		}
	}
	if h.Get("X-Kept") != "yes" || h.Get("Content-Type") != "Text/Event-Stream; charset=utf-8" {
		t.Errorf("fields that belong to the response were touched: %v", h)
	}
	if got := h.Get("Cache-Control"); got != "no-cache, no-transform" {
		t.Errorf("Cache-Control %q", got)
	}
	if got := h.Get("X-Accel-Buffering"); got != "no" {
		t.Errorf("X-Accel-Buffering %q", got)
	}
	if !rec.flushedH {
		t.Error("header not flushed before the first event")
	}
}

func TestUpstreamCacheControlIsKeptWithNoTransform(t *testing.T) {
	_, rec, _ := startStream(t, &Options{}, http.Header{"Cache-Control": {"private, max-age=0"}})
	if got := rec.header.Values("Cache-Control"); len(got) != 1 || got[0] != "private, max-age=0, no-transform" {
		t.Errorf("Cache-Control %q", got)
	}
	_, rec, _ = startStream(t, &Options{}, http.Header{"Cache-Control": {"no-store, No-Transform"}})
	if got := rec.header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store, No-Transform" {
		t.Errorf("Cache-Control %q", got)
	}
}

func TestRetryLineComesFirst(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Retry: 2500 * time.Millisecond}, nil)
	w.Write([]byte("data: a\n\n"))
	if got := rec.body(); got != "retry: 2500\ndata: a\n\n" {
		t.Errorf("body %q", got)
	}
}

func TestEveryWriteIsFlushed(t *testing.T) {
	w, rec, _ := startStream(t, &Options{}, nil)
	before := rec.flushes
	for i := 0; i < 3; i++ {
		w.Write([]byte("data: x\n\n"))
		if rec.flushes != before+i+1 {
			t.Fatalf("write %d not flushed", i)
		}
		// reverse_proxy flushes after each write too: nothing to send.
		w.Flush()
		if rec.flushes != before+i+1 {
			t.Fatalf("redundant flush after write %d reached the client writer", i)
		}
	}
}

func TestHeartbeatOnlyAtBoundaries(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
	forceTick(w, rec) // idle before any event: at a boundary
	w.Write([]byte("data: hel"))
	forceTick(w, rec) // mid-line
	w.Write([]byte("lo\n"))
	forceTick(w, rec) // between lines of one event
	w.Write([]byte("\n"))
	forceTick(w, rec) // after the event
	if got, want := rec.body(), ":\ndata: hello\n\n:\n"; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
}

func TestHeartbeatWaitsForIdleInterval(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
	w.Write([]byte("data: a\n\n"))
	w.tick() // the stream wrote just now: not idle
	if got := rec.body(); got != "data: a\n\n" {
		t.Errorf("heartbeat on a busy stream: %q", got)
	}
}

func TestHeartbeatTimerFires(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Heartbeat: 20 * time.Millisecond}, nil)
	w.Write([]byte("data: a\n\n"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(rec.body(), ":\n") {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat within 5s at a 20ms interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.Close()
	n := len(rec.body())
	time.Sleep(100 * time.Millisecond)
	if len(rec.body()) != n {
		t.Fatal("heartbeat written after Close")
	}
}

func TestEncodedStreamGetsNoBytesOfOurs(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour, Retry: time.Second}, http.Header{"Content-Encoding": {"gzip"}})
	w.Write([]byte("\x1f\x8b"))
	forceTick(w, rec)
	if got := rec.body(); got != "\x1f\x8b" {
		t.Errorf("body %q", got)
	}
}

func TestOtherResponsesPassThrough(t *testing.T) {
	for _, tc := range []struct {
		code int
		ct   string
	}{{200, "application/json"}, {204, ""}, {404, "text/plain"}, {502, "text/event-stream"}} {
		rec := newRecorder()
		cors, _ := NewCORS(CORSConfig{Origins: []string{"https://app.example.com"}})
		w := NewWriter(rec, &Options{Heartbeat: time.Hour, Retry: time.Second, CORS: cors}, "https://app.example.com", func() {})
		w.Header().Set("Content-Type", tc.ct)
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Connection", "close")
		w.WriteHeader(tc.code)
		w.Write([]byte("ok"))
		forceTick(w, rec)
		w.Close()
		if rec.code != tc.code || rec.body() != "ok" {
			t.Errorf("%d %s: got %d %q", tc.code, tc.ct, rec.code, rec.body())
		}
		if rec.header.Get("Content-Length") != "2" || rec.header.Get("Connection") != "close" {
			t.Errorf("%d %s: header changed: %v", tc.code, tc.ct, rec.header)
		}
		if rec.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
			t.Errorf("%d %s: no CORS for an allowed origin", tc.code, tc.ct)
		}
	}
}

func TestImplicitHeaderOnFirstWrite(t *testing.T) {
	rec := newRecorder()
	w := NewWriter(rec, &Options{Retry: time.Second}, "", func() {})
	defer w.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Write([]byte("data: a\n\n"))
	if rec.code != 200 || rec.body() != "retry: 1000\ndata: a\n\n" {
		t.Errorf("got %d %q", rec.code, rec.body())
	}
}

func TestEndAtBoundaryWritesHintAndCancels(t *testing.T) {
	w, rec, cancelled := startStream(t, &Options{}, nil)
	w.Write([]byte("data: a\n\n"))
	w.End([]byte("retry: 1234\n\n"), time.Second, ReasonShutdown)
	if !w.Ended() || !*cancelled {
		t.Fatal("stream at a boundary not ended at once")
	}
	if _, err := w.Write([]byte("data: b\n\n")); err == nil {
		t.Error("write after end succeeded")
	}
	if got := rec.body(); got != "data: a\n\nretry: 1234\n\n" {
		t.Errorf("body %q", got)
	}
}

func TestEndMidEventWaitsForTheBoundary(t *testing.T) {
	w, rec, cancelled := startStream(t, &Options{}, nil)
	w.Write([]byte("data: a"))
	w.End([]byte("retry: 1\n\n"), time.Hour, ReasonShutdown)
	if w.Ended() {
		t.Fatal("ended inside an event")
	}
	n, err := w.Write([]byte("bc\n\ndata: partial"))
	if err != nil || n != 17 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !w.Ended() || !*cancelled {
		t.Fatal("not ended at the boundary")
	}
	if got := rec.body(); got != "data: abc\n\nretry: 1\n\n" {
		t.Errorf("body %q", got)
	}
}

func TestEndGivesUpAfterGrace(t *testing.T) {
	w, _, _ := startStream(t, &Options{}, nil)
	w.Write([]byte("data: a"))
	w.End(nil, 20*time.Millisecond, ReasonShutdown)
	deadline := time.Now().Add(5 * time.Second)
	for !w.Ended() {
		if time.Now().After(deadline) {
			t.Fatal("stream never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamsEndAllEndsLaterStreamsToo(t *testing.T) {
	s := new(Streams)
	opts := &Options{Streams: s}
	w1, rec1, _ := startStream(t, opts, nil)
	if n := s.EndAll(func() []byte { return []byte("retry: 7\n\n") }, time.Second); n != 1 {
		t.Fatalf("EndAll ended %d streams, want 1", n)
	}
	w2, rec2, c2 := startStream(t, opts, nil)
	if !w1.Ended() || !w2.Ended() || !*c2 {
		t.Fatal("streams not ended")
	}
	if rec1.body() != "retry: 7\n\n" || rec2.body() != "retry: 7\n\n" {
		t.Errorf("bodies %q %q", rec1.body(), rec2.body())
	}
	if n := s.EndAll(func() []byte { return nil }, time.Second); n != 0 {
		t.Errorf("second EndAll ended %d", n)
	}
}

// atBoundary is the HTML standard's view, kept apart from the scanner: the
// bytes are empty or end with the terminator of an empty line.
func atBoundary(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if c := b[len(b)-1]; c != '\n' && c != '\r' {
		return false
	}
	lineLen := 0
	empty := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r', '\n':
			empty = lineLen == 0
			lineLen = 0
			if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		default:
			lineLen++
		}
	}
	return empty
}

// FuzzHeartbeatsNeverChangeTheStream feeds an arbitrary upstream stream in
// arbitrary chunks, with heartbeat ticks between them, and checks that the
// client's bytes minus the heartbeats are exactly the upstream's bytes, and
// that every heartbeat lands where no event is pending.
func FuzzHeartbeatsNeverChangeTheStream(f *testing.F) {
	f.Add([]byte("data: a\n\ndata: b\r\n\r\ndata: c\r\r"), []byte{3, 0x81, 5, 0x82, 1, 0x83})
	f.Add([]byte("data: x\r"), []byte{0x88, 0x81})
	f.Add([]byte("\xef\xbb\xbfdata: bom\n\n"), []byte{0x81, 2, 0x81})
	f.Add([]byte(": c\n\nid: 1\nevent: e\ndata: 1\ndata: 2\n\n"), []byte{1, 0x80, 1, 0x80, 1, 0x80})
	f.Fuzz(func(t *testing.T, stream, plan []byte) {
		if len(stream) > 4096 || len(plan) > 256 {
			t.Skip() // the oracle is quadratic; short inputs find the bugs
		}
		w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
		rest := stream
		for _, p := range plan {
			if p&0x80 != 0 {
				forceTick(w, rec)
			}
			n := int(p & 0x7f)
			if n > len(rest) {
				n = len(rest)
			}
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if len(rest) > 0 {
			w.Write(rest)
		}
		forceTick(w, rec)
		w.Close()

		var relayed []byte
		for _, c := range rec.writes {
			if c.heartbeat {
				if string(c.b) != ":\n" {
					t.Fatalf("tick wrote %q", c.b)
				}
				if !atBoundary(bytes.TrimPrefix(relayed, utf8BOM)) {
					t.Fatalf("heartbeat after %q: inside an event", relayed)
				}
				continue
			}
			relayed = append(relayed, c.b...)
		}
		body := bytes.TrimPrefix(stream, utf8BOM)
		var sc buffer.Scanner // ids no header can carry are masked
		sc.Feed(body)
		if m := sc.Masked(); m != nil {
			body = m
		}
		// The upstream's leading BOM reaches the client when nothing went
		// before it, where the browser strips it; after a heartbeat it
		// would be data, and the proxy drops it.
		want := body
		if len(body) < len(stream) && !(len(rec.writes) > 0 && rec.writes[0].heartbeat) {
			want = append(bytes.Clone(utf8BOM), body...)
		}
		if !bytes.Equal(relayed, want) {
			t.Fatalf("client got %q without heartbeats, upstream sent %q", relayed, want)
		}
		// And an EventSource sees the same events either way.
		got, _, _ := testcaddy.ParseEvents([]byte(rec.body()))
		exp, _, _ := testcaddy.ParseEvents(want)
		if len(got) != len(exp) {
			t.Fatalf("events %v, want %v", got, exp)
		}
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("event %d: %+v, want %+v", i, got[i], exp[i])
			}
		}
	})
}

// nopWriter is the cheapest flushing writer: the baseline for the
// per-write cost of the stream writer.
type nopWriter struct{ h http.Header }

func (n *nopWriter) Header() http.Header         { return n.h }
func (n *nopWriter) WriteHeader(int)             {}
func (n *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (n *nopWriter) FlushError() error           { return nil }

var benchEvent = []byte("id: 12345\nevent: tick\ndata: {\"n\":12345,\"payload\":\"" + strings.Repeat("x", 100) + "\"}\n\n")

// BenchmarkRelayPlain is what reverse_proxy does per write of an event
// stream without sse_proxy: write, then flush.
func BenchmarkRelayPlain(b *testing.B) {
	w := &nopWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	flush := flusherOf(w)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		w.Write(benchEvent)
		flush()
	}
}

// BenchmarkRelaySSEProxy is the same through the stream writer, with
// heartbeats on and the reverse_proxy flush after each write; "hold" is the
// default with reconnect on (events held until complete).
func BenchmarkRelaySSEProxy(b *testing.B) {
	b.Run("stream", func(b *testing.B) { benchRelay(b, 0) })
	b.Run("hold", func(b *testing.B) { benchRelay(b, 1<<20) })
}

func benchRelay(b *testing.B, maxEvent int) {
	rw := &nopWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	w := NewWriter(rw, &Options{Heartbeat: 15 * time.Second, Metrics: NewMetrics(), MaxEventSize: maxEvent}, "", func() {})
	w.WriteHeader(http.StatusOK)
	defer w.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEvent)))
	for b.Loop() {
		w.Write(benchEvent)
		w.FlushError()
	}
}

func TestHeartbeatDelayIsAlignedAndNeverEarly(t *testing.T) {
	now := time.Unix(1000, 123456789)
	for _, d := range []time.Duration{time.Millisecond, 15 * time.Second, 14*time.Second + 1} {
		got := heartbeatDelay(now, d, 15*time.Second)
		at := now.Add(got)
		const grid = 15 * time.Second / 16
		if got < d || got >= d+grid {
			t.Errorf("delay %v for %v: want at least %v, less than a grid step more", got, d, d)
		}
		if at.UnixNano()%int64(grid) != 0 {
			t.Errorf("fires at %v, not on the %v grid", at, grid)
		}
	}
	if got := heartbeatDelay(now, 50*time.Millisecond, 50*time.Millisecond); got < 50*time.Millisecond || got > 54*time.Millisecond {
		t.Errorf("short interval: delay %v", got)
	}
	for interval, want := range map[time.Duration]time.Duration{
		15 * time.Second: 15*time.Second + 15*time.Second/16,
		59 * time.Second: 60 * time.Second, // the grid step is at most a second
	} {
		if got := HeartbeatLatest(interval); got != want {
			t.Errorf("HeartbeatLatest(%v) = %v, want %v", interval, got, want)
		}
	}
}
