package proxy

import (
	"sync"
	"time"
)

// End asks the writer to end the stream at the next event boundary, writing
// hint (a retry field, say) first, and to cancel the upstream request. If no
// boundary comes within grace, the stream ends where it is. End returns at
// once; the next handler then aborts, which the caller recognises by Ended.
func (w *Writer) End(hint []byte, grace time.Duration, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.mode != modeStream || w.closed || w.ended || w.ending {
		return
	}
	w.endRetry = hint
	w.reason = reason
	if w.encoded || w.clientAtBoundary() {
		w.finish()
		return
	}
	w.ending = true
	w.endBefore = time.Now().Add(grace)
	if w.timer == nil {
		w.timer = time.AfterFunc(grace, w.tick)
	} else {
		w.timer.Reset(grace)
	}
}

// writeUntilBoundary writes p up to its last event boundary and ends the
// stream there; the partial event after it is dropped, as the browser would
// drop it anyway. Callers hold mu.
func (w *Writer) writeUntilBoundary(p []byte, skipped int) (int, error) {
	i, _ := w.scan.Feed(p)
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

// finish writes the hint, flushes and cancels the upstream. Callers hold mu.
func (w *Writer) finish() {
	if !w.encoded && w.endRetry != nil {
		_ = w.write(w.endRetry)
	}
	_ = w.flushNow()
	w.ended = true
	w.ending = false
	w.held = nil
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel()
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
	if w.ended {
		return
	}
	w.reason = reason
	w.endRetry = nil
	w.finish()
}

// Streams is the set of open streams of one handler, so that they can all
// be ended together when the server shuts down or the config is reloaded.
type Streams struct {
	mu      sync.Mutex
	set     map[*Writer]struct{}
	closing bool
	hint    func() []byte
}

// add registers w, or reports false when the set is closing and w must end
// at once, with the hint returned. Called with w.mu held.
func (s *Streams) add(w *Writer) (bool, []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, s.hint()
	}
	if s.set == nil {
		s.set = make(map[*Writer]struct{})
	}
	s.set[w] = struct{}{}
	return true, nil
}

// remove forgets w. Called with w.mu held.
func (s *Streams) remove(w *Writer) {
	s.mu.Lock()
	delete(s.set, w)
	s.mu.Unlock()
}

// EndAll ends every open stream, and every stream that opens later, at its
// next boundary (or after grace), each with its own hint. It returns the
// number of streams it ended, 0 when called again.
func (s *Streams) EndAll(hint func() []byte, grace time.Duration) int {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return 0
	}
	s.closing, s.hint = true, hint
	list := make([]*Writer, 0, len(s.set))
	for w := range s.set {
		list = append(list, w)
	}
	s.mu.Unlock()
	// Writers are ended outside s.mu: a writer takes its own lock first and
	// then s.mu (add, remove), so holding s.mu here could deadlock. Each is
	// ended on a goroutine of its own: ending writes to the client, and a
	// client that stopped reading must not hold up the others (a detached
	// stream's write gives up after a second; any other waits for its
	// handler's write, which may wait for the client). EndAll waits for
	// them until grace and a second have passed, so it may return before
	// a stream stuck in a write has ended; that stream ends when its write
	// gives up.
	var wg sync.WaitGroup
	for _, w := range list {
		wg.Add(1)
		go func(h []byte) {
			defer wg.Done()
			w.End(h, grace, ReasonShutdown)
		}(hint())
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(grace + time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
	return len(list)
}
