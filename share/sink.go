package share

import (
	"bytes"
	"net/http"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// sink is the ResponseWriter under the hub's upstream writer. That writer
// (a proxy.Writer holding events until complete) passes it only whole
// events, possibly several per write and one split over two writes; the
// sink cuts them apart for the replay buffer and the client queues.
type sink struct {
	hub    *Hub
	header http.Header
	sc     buffer.Scanner
	cur    []byte // the event being assembled
	prevID string
	hasID  bool
	final  bool // the answer is not a stream: its body is kept as it is
	begun  bool // some of the body was written
}

// bom is the byte-order mark the hub's writer passes through, as a write
// of its own, at the start of the upstream's body.
var bom = []byte("\xef\xbb\xbf")

func (s *sink) Header() http.Header { return s.header }

func (s *sink) WriteHeader(code int) {
	stream := code == http.StatusOK && proxy.IsEventStream(s.header.Get("Content-Type"))
	s.final = !stream
	s.hub.answer(code, s.header.Clone(), stream)
}

func (s *sink) Write(p []byte) (int, error) {
	n := len(p)
	if s.final {
		s.hub.finalBody(p)
		return n, nil
	}
	if !s.begun {
		s.begun = true
		if bytes.Equal(p, bom) {
			// The first event keeps it (each client's writer decides
			// whether its page needs it), but the scanner reads on as the
			// browser does, after it: an id on the first line counts.
			s.cur = append(s.cur, p...)
			return n, nil
		}
	}
	for len(p) > 0 {
		i := s.sc.NextEvent(p)
		if i < 0 {
			s.cur = append(s.cur, p...)
			break
		}
		// The event's bytes pass to the replay buffer, which keeps them:
		// a new slice per event.
		ev := append(s.cur, p[:i]...)
		s.cur, p = nil, p[i:]
		idb, has := s.sc.LastID()
		id := string(idb)
		own := has && (!s.hasID || id != s.prevID)
		s.prevID, s.hasID = id, has
		s.hub.publish(ev, id, own)
	}
	return n, nil
}

// FlushError: events are handed on as they complete; nothing to flush.
func (s *sink) FlushError() error { return nil }
