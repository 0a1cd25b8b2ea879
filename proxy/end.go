package proxy

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// End asks the writer to end the stream at the next event boundary, writing
// hint (a retry field, say) first, and to cancel the upstream request. If no
// boundary comes within grace, the stream ends where it is. End returns at
// once; the next handler then aborts, which the caller recognises by Ended.
//
// End does not wait for a write to a client that stopped reading: a write
// that holds the writer's lock for longer than stuckWrite is cut short (see
// cutClient), and so is the last write of the ending stream.
func (w *Writer) End(hint []byte, grace time.Duration, reason string) {
	if !w.mu.TryLock() {
		// A write is under way. To a client that stopped reading it
		// would block until the server's write timeout (a minute by
		// default), and reload and shutdown with it.
		t := time.AfterFunc(stuckWrite, func() { w.cutClient(reason) })
		w.mu.Lock()
		t.Stop()
	}
	defer w.mu.Unlock()
	switch w.state {
	case stateOpen:
	case stateClosed:
		if r := w.cutReason(); r != "" {
			// The stuck write failed: the stream is over, as asked.
			w.reason = r
			w.to(stateEnded)
			w.cancel()
		}
		return
	default: // not a stream, or already ending or ended
		return
	}
	w.endRetry = hint
	w.reason = reason
	if w.encoded || w.clientAtBoundary() {
		w.finish()
		return
	}
	w.to(stateEnding)
	w.endBefore = time.Now().Add(grace)
	if w.timer == nil {
		w.timer = time.AfterFunc(grace, w.tick)
	} else {
		w.timer.Reset(grace)
	}
}

// endingTick is the timer's work while the stream is ending (End came
// mid-event): once endBefore has passed, no boundary came in time and the
// stream ends inside the event, which the browser discards before it
// reconnects; before that, the timer is set for endBefore. Callers hold mu.
func (w *Writer) endingTick(now time.Time) {
	if !now.Before(w.endBefore) {
		w.finish()
		return
	}
	w.timer.Reset(w.endBefore.Sub(now))
}

// writeUntilBoundary writes p up to its last event boundary and ends the
// stream there; the partial event after it is dropped, as the browser would
// drop it anyway. Callers hold mu.
func (w *Writer) writeUntilBoundary(p []byte, skipped int) (int, error) {
	i, _ := w.scan.Feed(p)
	p = w.masked(p)
	if i < 0 {
		_, err := w.rw.Write(p)
		if err == nil {
			err = w.flushNow()
		}
		return len(p) + skipped, err
	}
	if _, err := w.rw.Write(p[:i]); err != nil {
		return i + skipped, err
	}
	w.finish()
	return len(p) + skipped, nil
}

// finish writes the hint, flushes and cancels the upstream: the stream is
// ended. Callers hold mu, in stateOpen, stateEnding or stateClosed.
func (w *Writer) finish() {
	reason := w.reason
	cut := time.AfterFunc(stuckWrite, func() { w.cutClient(reason) })
	if !w.encoded && w.endRetry != nil {
		_ = w.write(w.endRetry)
	}
	_ = w.flushNow()
	cut.Stop()
	w.to(stateEnded)
	w.held = nil
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel()
}

// stuckWrite is how long a write to the client may hold up the end of its
// stream (End, and the stream's last write) before the client is cut off.
// A client that reads takes a write in far less; one that stopped reading
// would hold it until the server's write timeout.
const stuckWrite = time.Second

// cutState lets End cut a client off while a write to it is stuck. It has
// a lock of its own because the stuck write holds the writer's.
type cutState struct {
	// mu guards the fields below. It is taken after Writer.mu when both
	// are held, and held across no I/O that can block (setting a deadline,
	// closing a connection).
	mu     sync.Mutex
	conn   net.Conn // a detached stream's raw connection
	done   bool     // the handler is done with client: a deadline on it would panic (HTTP/2)
	reason string   // why the client was cut, once it was
}

// cutClient makes the write stuck on the client fail at once: a write
// deadline in the past on the client's connection or stream (net/http's
// own writer, not Caddy's wrappers, which are not safe for concurrent use),
// or, for a detached stream, closing its connection. It runs without the
// writer's lock, which the stuck write holds.
func (w *Writer) cutClient(reason string) {
	c := &w.cut
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done || c.reason != "" {
		return
	}
	c.reason = reason
	if c.conn != nil {
		_ = c.conn.Close()
		return
	}
	rw := w.client.Load().ResponseWriter
	for {
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	_ = http.NewResponseController(rw).SetWriteDeadline(time.Now())
}

// cutReason returns why the client was cut off, or "".
func (w *Writer) cutReason() string {
	w.cut.mu.Lock()
	defer w.cut.mu.Unlock()
	return w.cut.reason
}

// Reasons a stream ends, the label of the streams_ended_total metric.
const (
	ReasonClientGone    = "client_gone"    // the client went away
	ReasonUpstreamEnded = "upstream_ended" // the upstream ended it, not reconnected
	ReasonUpstreamDown  = "upstream_down"  // reconnect_for passed without an upstream
	ReasonUpstreamFinal = "upstream_final" // a reconnect got 204 or 4xx
	ReasonEventCut      = "event_cut"      // the upstream broke inside an event too big to hold
	ReasonMaxAge        = "max_age"        // the stream reached max_age
	ReasonShutdown      = "shutdown"       // reload or stop
	ReasonEvicted       = "evicted"        // a shared stream's client was too slow
	reasonDefault       = ReasonUpstreamEnded
)

// Abort ends the stream where it is, without a hint: the client sees the
// stream end inside an event, which EventSource discards before it
// reconnects.
func (w *Writer) Abort(reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch w.state {
	case stateOpen, stateEnding, stateClosed:
	default: // not a stream (nothing to abort), or already ended
		return
	}
	w.reason = reason
	w.endRetry = nil
	w.finish()
}
