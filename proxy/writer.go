package proxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// Options is what every stream of one handler shares. It is read-only once
// streams use it.
type Options struct {
	// Heartbeat is the idle time after which a comment line is written
	// between events; 0 turns heartbeats off.
	Heartbeat time.Duration
	// Retry, when positive, is sent as a retry: field first on every stream.
	Retry time.Duration
	// CORS is the policy, or nil when the proxy leaves CORS to the upstream.
	CORS *CORS
	// Streams, when set, tracks every open stream so they can be ended
	// together (on reload and shutdown).
	Streams *Streams
	// Metrics, when set, counts what the streams do.
	Metrics *Metrics
	// MaxEventSize, when positive, makes the writer hold each event until
	// it is complete and send only whole events, so that an upstream
	// response can break and be replaced without a partial event reaching
	// the client. An event larger than this streams through instead.
	MaxEventSize int
	// InvalidID, when set, is called once per stream when an upstream
	// event id held a character no header can carry and was masked (see
	// buffer.Scanner.Masked). It must not block.
	InvalidID func()
}

// RetryLine is the retry field that sets an EventSource's reconnection time:
// one line, with no empty line after it. The HTML standard applies a retry
// field as soon as its line is parsed, so the field works the same whether
// it is followed by the first event's lines (at the start of a stream) or
// by the end of the stream (when the proxy ends it). An empty line of its
// own would be an event with no data: nothing for EventSource, but an empty
// message for client libraries that dispatch on every empty line
// (@microsoft/fetch-event-source does).
func RetryLine(d time.Duration) []byte {
	return []byte("retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n")
}

// heartbeatLine is a comment line, written only at an event boundary:
// every parser ignores it, and it resets every idle timer on the path. No
// empty line follows it, for the same reason as with RetryLine: the next
// event's lines, or the next heartbeat, follow it as they would follow
// the boundary itself.
var heartbeatLine = []byte(":\n")

// errStreamEnded is returned for writes after the proxy ended the stream.
var errStreamEnded = errors.New("sse_proxy: stream ended by the proxy")

// Writer is the ResponseWriter the next handler writes to. For a
// text/event-stream response it cleans and completes the header, flushes
// every write at once, and writes heartbeats at event boundaries while the
// stream is idle. Anything else passes through, with CORS applied.
//
// Every method takes mu: the heartbeat timer writes from its own goroutine,
// and reverse_proxy flushes from a timer of its own. Where the response
// stands is one state (see state); the methods read their checks from it.
type Writer struct {
	// client is the writer the handler got, which Header and Unwrap give;
	// from Detach on, a stand-in (see detachedClient), so that a stream
	// served on its connection does not keep net/http's response, its
	// buffers and Caddy's wrappers alive. Swapped atomically: read
	// without mu.
	client atomic.Pointer[clientRef]
	// Set by NewWriter and never changed: read without mu.
	opts   *Options
	origin string

	// mu guards every field below it but cut, which has a lock of its
	// own. mu is HELD DURING NETWORK WRITES: every write and flush to the
	// client happens under it, so a client that stopped reading holds it
	// until its write fails (the server's write timeout; stallTimeout on a
	// detached connection). What must not wait that long does not wait on
	// mu: End tries it (TryLock) and, when a write holds it, cuts the
	// client off after stuckWrite (cutClient, under cut.mu only); EndAll
	// ends each stream on a goroutine of its own; share closes a detached
	// stream's connection, without mu, to unblock a stuck write. Lock
	// order (doc.go): mu before cut.mu and before Streams.mu; nothing is
	// locked while mu is taken.
	mu    sync.Mutex
	state state
	// rw is where the body goes: client, or from Detach on the
	// connection taken over. cancel ends the upstream request (from
	// Detach on: ends the body and closes the connection).
	rw        http.ResponseWriter
	cancel    func()
	encoded   bool // the body is content-encoded: no bytes may be added
	scan      buffer.Scanner
	started   bool      // the upstream's first body bytes are past the BOM check
	bomSeen   int       // leading bytes that match the BOM so far (held back)
	dirty     bool      // bytes written since the last flush
	sent      bool      // the client's body has bytes (set when they are flushed)
	last      time.Time // last write to the client
	flush     func() error
	timer     *time.Timer
	endRetry  []byte    // hint written when ending
	endBefore time.Time // stateEnding: deadline for reaching a boundary
	reason    string    // why the stream ended, for metrics
	held      []byte    // hold mode: the incomplete event
	oversize  bool      // hold mode: an event too big to hold is streaming through
	connClose bool      // the header asks to close the connection after the response
	headerErr bool      // sending the stream's header failed
	detached  bool      // the stream runs on a hijacked connection (Detach)
	badID     bool      // an upstream event id was masked (counted once)

	cut cutState // how End cuts off a client whose write is stuck (end.go)
}

// NewWriter wraps rw for one request from origin (the request's Origin
// field). cancel must end the upstream request; it is called when the proxy
// ends the stream itself.
func NewWriter(rw http.ResponseWriter, opts *Options, origin string, cancel func()) *Writer {
	w := &Writer{rw: rw, opts: opts, origin: origin, cancel: cancel}
	w.client.Store(&clientRef{rw})
	return w
}

// clientRef holds the writer Header and Unwrap give, for an atomic swap.
type clientRef struct{ http.ResponseWriter }

// Header returns the header map of the writer the handler got. (Once the
// stream is detached, the header has been sent: changing it does nothing.)
func (w *Writer) Header() http.Header { return w.client.Load().Header() }

// Unwrap returns the writer the handler got, for http.ResponseController.
// (A detached stream's connection is no longer that writer's: its methods
// then fail with http.ErrHijacked.)
func (w *Writer) Unwrap() http.ResponseWriter { return w.client.Load().ResponseWriter }

// WriteHeader decides, from the status and Content-Type, whether the
// response is an event stream, fixes the header accordingly and sends it.
func (w *Writer) WriteHeader(code int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeader(code)
}

func (w *Writer) writeHeader(code int) {
	if w.state != stateNew {
		return // superfluous; net/http would only log it
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.rw.WriteHeader(code) // informational (103 Early Hints): more follows
		return
	}
	h := w.rw.Header()
	if w.opts.CORS != nil {
		w.opts.CORS.Apply(h, w.origin)
	}
	if code != http.StatusOK || !IsEventStream(h.Get("Content-Type")) {
		w.to(statePassthrough)
		w.rw.WriteHeader(code)
		return
	}
	w.to(stateOpen)
	CleanHeaders(h)
	if w.connClose {
		h.Set("Connection", "close")
	}
	setStreamCaching(h)
	if ce := h.Get("Content-Encoding"); ce != "" && ce != "identity" {
		// Bytes of ours would corrupt an encoded body. The transport is
		// asked for identity (see Shaper), so this takes an upstream that
		// compresses regardless.
		w.encoded = true
	}
	w.flush = flusherOf(w.rw)
	w.rw.WriteHeader(code)
	if !w.encoded && w.opts.Retry > 0 {
		w.write(RetryLine(w.opts.Retry))
	}
	// The header goes out now: EventSource.onopen fires at once.
	w.headerErr = w.flushNow() != nil
	w.last = time.Now()
	if w.opts.Metrics != nil {
		w.opts.Metrics.streamOpened()
	}
	if !w.encoded && w.opts.Heartbeat > 0 {
		w.timer = time.AfterFunc(heartbeatDelay(w.last, w.opts.Heartbeat, w.opts.Heartbeat), w.tick)
	}
	if w.opts.Streams != nil {
		if ok, hint := w.opts.Streams.add(w); !ok {
			// The server is shutting down: end the stream right away.
			w.endRetry = hint
			w.reason = ReasonShutdown
			w.finish()
		}
	}
}

// Write relays upstream bytes. In a stream they are flushed at once, and
// the scanner follows event boundaries. Its routes, by state: the header
// first if none went out; a passthrough body as it is; nothing once the
// proxy ended the stream; an encoded stream's bytes as they are
// (writeEncoded); otherwise the upstream's leading BOM is settled
// (bodyStart) and the bytes go through one of three body writers: whole
// events only (writeHeld, when MaxEventSize is set), up to the next
// boundary and no further (writeUntilBoundary, while ending), or as they
// come (writeEvents).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == stateNew {
		w.writeHeader(http.StatusOK)
	}
	switch {
	case w.state == statePassthrough:
		return w.rw.Write(p)
	case w.state == stateEnded:
		return 0, errStreamEnded
	case w.encoded:
		return w.writeEncoded(p)
	}
	// An event stream, open, ending or closed (its bytes still go to the
	// client, whose write then fails).
	skipped := 0
	if !w.started {
		var err error
		if p, skipped, err = w.bodyStart(p); err != nil {
			return 0, err
		}
		if len(p) == 0 {
			return skipped, nil
		}
	}
	switch {
	case w.opts.MaxEventSize > 0:
		return w.writeHeld(p, skipped)
	case w.state == stateEnding:
		return w.writeUntilBoundary(p, skipped)
	default:
		return w.writeEvents(p, skipped)
	}
}

// writeEncoded relays bytes of a content-encoded stream as they are; the
// flush is left to the caller (reverse_proxy flushes every write). Callers
// hold mu.
func (w *Writer) writeEncoded(p []byte) (int, error) {
	n, err := w.rw.Write(p)
	w.dirty = true
	return n, err
}

// writeEvents relays p as it comes, with the ids no header can carry
// masked, and flushes it. Callers hold mu.
func (w *Writer) writeEvents(p []byte, skipped int) (int, error) {
	_, events := w.scan.Feed(p)
	n, err := w.rw.Write(w.masked(p))
	w.dirty = true
	w.last = time.Now()
	if err == nil {
		err = w.flushNow()
	}
	if err != nil {
		w.fail()
	}
	if w.opts.Metrics != nil {
		w.opts.Metrics.relayed(events)
	}
	return n + skipped, err
}

// writeHeld relays only complete events: bytes up to the last boundary in
// p go out with what was held before; the rest is held. An event that
// outgrows MaxEventSize streams through until it ends. Callers hold mu.
func (w *Writer) writeHeld(p []byte, skipped int) (int, error) {
	i, events := w.scan.Feed(p)
	n := len(p)
	p = w.masked(p)
	var err error
	sent := false
	switch {
	case i >= 0:
		if len(w.held) > 0 {
			_, err = w.rw.Write(w.held)
		}
		if err == nil {
			_, err = w.rw.Write(p[:i])
		}
		w.held = append(w.held[:0], p[i:]...)
		w.oversize, sent = false, true
	case w.oversize:
		_, err = w.rw.Write(p)
		sent = true
	default:
		w.held = append(w.held, p...)
	}
	if err == nil && !w.oversize && len(w.held) > w.opts.MaxEventSize {
		_, err = w.rw.Write(w.held)
		w.held = w.held[:0]
		w.oversize, sent = true, true
	}
	if len(w.held) == 0 && cap(w.held) > 64<<10 {
		w.held = nil // a big event passed: do not keep its memory
	}
	if sent {
		w.dirty = true
		w.last = time.Now()
		if err == nil {
			err = w.flushNow()
		}
	}
	if err != nil {
		w.fail()
		return 0, err
	}
	if w.opts.Metrics != nil {
		w.opts.Metrics.relayed(events)
	}
	if w.state == stateEnding && !w.oversize {
		w.finish() // the client is at a boundary now
	}
	return n + skipped, nil
}

// masked returns p, or its copy with the upstream's unsendable event ids
// masked, after the scanner was fed p. Callers hold mu.
func (w *Writer) masked(p []byte) []byte {
	m := w.scan.Masked()
	if m == nil {
		return p
	}
	if !w.badID {
		w.badID = true
		if w.opts.Metrics != nil {
			w.opts.Metrics.invalidID()
		}
		if w.opts.InvalidID != nil {
			w.opts.InvalidID()
		}
	}
	return m
}

// clientAtBoundary reports whether what the client has received so far ends
// at an event boundary. Callers hold mu.
func (w *Writer) clientAtBoundary() bool {
	if w.opts.MaxEventSize > 0 {
		return !w.oversize
	}
	return w.scan.AtBoundary()
}

// Committed reports whether the response header has been decided.
func (w *Writer) Committed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state != stateNew
}

// CommitStream answers the client 200 text/event-stream before any
// upstream did, so that EventSource opens (and heartbeats flow) while the
// upstream is still failing.
func (w *Writer) CommitStream() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != stateNew {
		return
	}
	h := w.rw.Header()
	h.Set("Content-Type", "text/event-stream")
	w.writeHeader(http.StatusOK)
}

// Restart prepares the stream for the next upstream response after the
// current one ended or broke: a held partial event is dropped and a BOM is
// expected again. It reports false when the client's stream cannot go on:
// an event too big to hold was cut, or the stream is not a stream at all.
func (w *Writer) Restart() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.state.live() || w.oversize || w.encoded {
		return false
	}
	w.held = w.held[:0]
	w.scan.Restart()
	w.started, w.bomSeen = false, 0
	return true
}

// LastEventID returns the id of the last complete event sent to the
// client, the Last-Event-ID a browser would reconnect with.
func (w *Writer) LastEventID() (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.scan.LastID()
	return string(id), ok
}

// write writes bytes of the proxy's own; callers hold mu.
func (w *Writer) write(p []byte) error {
	_, err := w.rw.Write(p)
	w.dirty = true
	return err
}

// flushNow flushes the underlying writer; callers hold mu.
func (w *Writer) flushNow() error {
	w.sent = w.sent || w.dirty
	w.dirty = false
	if w.flush == nil {
		return nil
	}
	return w.flush()
}

// FlushError flushes, unless Write already did: reverse_proxy flushes after
// every write of an event stream, and this writer flushes in Write itself so
// any next handler streams. The second flush would find nothing to send.
func (w *Writer) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case stateNew:
		// Flushing sends the header: decide what the response is first.
		w.writeHeader(http.StatusOK)
		if w.state != statePassthrough {
			return nil // a stream: writeHeader flushed
		}
	case statePassthrough:
	case stateEnded:
		return nil
	default: // open, ending, closed
		if !w.dirty {
			return nil
		}
		return w.flushNow()
	}
	return http.NewResponseController(w.rw).Flush()
}

// Flush is FlushError for callers that use http.Flusher.
func (w *Writer) Flush() { _ = w.FlushError() }

// Close stops the writer's timers; no write of the proxy's own follows. The
// handler calls it before returning, since writing to a finished response
// panics in the HTTP/2 server.
func (w *Writer) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.detached {
		return // the stream outlives the handler; see Release
	}
	w.close()
}

// Release is Close for a detached stream, called by whoever owns its
// connection once the stream is over.
func (w *Writer) Release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.close()
}

// CloseConnection makes an HTTP/1.x stream's header say Connection: close,
// for a stream that will be detached: its connection cannot go back to the
// server for another request. Call it before the header is written.
func (w *Writer) CloseConnection() {
	w.mu.Lock()
	w.connClose = true
	w.mu.Unlock()
}

// ErrNotDetachable is Detach's answer for a stream that cannot move to its
// connection: not a stream, already ending or ended, or its header was not
// sent.
var ErrNotDetachable = errors.New("sse_proxy: stream cannot be detached")

// Detach moves the stream onto the connection of its HTTP/1.x request,
// which hijack takes over from net/http (http.Hijacker.Hijack, after the
// header went out); chunked tells whether that header announced chunked
// transfer coding (it does for an HTTP/1.1 request). hijack runs under the
// writer's lock, so no heartbeat, End or max-age timer writes to net/http's
// response in between. From then on the writer frames the body itself and
// the handler may return: Close does nothing, and the connection's owner
// calls Release when the stream is over. Ending the stream (End, Abort,
// reload, shutdown) or a failed write closes the connection. The stream is
// not detached, and hijack not called, when it is not a stream, is ending
// or ended, or its header could not be sent (ErrNotDetachable).
func (w *Writer) Detach(hijack func() (net.Conn, error), chunked bool) (net.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != stateOpen || w.headerErr || w.encoded {
		return nil, ErrNotDetachable
	}
	conn, err := hijack()
	if err != nil {
		return nil, err
	}
	cw := newConnWriter(conn, chunked)
	w.rw, w.flush, w.cancel = cw, cw.FlushError, cw.close
	w.detached, w.dirty = true, false
	w.client.Store(&clientRef{detachedClient{}})
	w.cut.mu.Lock()
	w.cut.conn = cw.raw
	w.cut.mu.Unlock()
	return conn, nil
}

// close stops the timers and unregisters the stream; callers hold mu.
func (w *Writer) close() {
	if w.bomSeen > 0 && w.state.live() && w.opts.MaxEventSize == 0 {
		// The body ended inside what looked like a BOM: it was data.
		_, _ = w.rw.Write(utf8BOM[:w.bomSeen])
		w.bomSeen = 0
	}
	stream := w.state.stream()
	switch w.state {
	case stateNew, stateOpen, stateEnding:
		w.to(stateClosed)
	}
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cut.mu.Lock()
	w.cut.done = true
	if w.reason == "" {
		w.reason = w.cut.reason
	}
	w.cut.mu.Unlock()
	if stream {
		if w.opts.Streams != nil {
			w.opts.Streams.remove(w)
		}
		if w.opts.Metrics != nil {
			reason := w.reason
			if reason == "" {
				reason = reasonDefault
			}
			w.opts.Metrics.streamClosed(reason)
		}
	}
}

// SetReason records why the stream is ending, unless the proxy ended it
// itself (which records its own reason).
func (w *Writer) SetReason(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reason == "" {
		w.reason = reason
	}
}

// Ended reports whether the proxy ended the stream (and so the next
// handler's abort is expected).
func (w *Writer) Ended() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state == stateEnded || w.cutReason() != ""
}

// fail records that a write to the client failed: the proxy writes
// nothing of its own to it any more. Callers hold mu.
func (w *Writer) fail() {
	if w.state.live() {
		w.to(stateClosed)
	}
}

// flusherOf finds the flush method of rw once per stream, so that a flush
// allocates nothing (http.NewResponseController allocates on every call).
func flusherOf(rw http.ResponseWriter) func() error {
	for {
		switch f := rw.(type) {
		case interface{ FlushError() error }:
			return f.FlushError
		case http.Flusher:
			return func() error { f.Flush(); return nil }
		case interface{ Unwrap() http.ResponseWriter }:
			rw = f.Unwrap()
		default:
			return nil
		}
	}
}
