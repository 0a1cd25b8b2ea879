package share

import (
	"bytes"
	"net/http"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// sink is the ResponseWriter under the hub's upstream writer. That writer
// (a proxy.Writer that holds nothing: the sink is where events are held)
// passes the upstream's bytes on as they come; the sink assembles them into
// complete events for the replay buffer and the client queues.
//
// An event is held until complete, up to the config's MaxEventSize. An
// event that grows past it is cut: what was held is let go, the rest of its
// bytes are skipped as they come (only the scanner sees them, to find its
// end and its id), and the clients never see any of it. In its place they
// get its id alone ("id: x", an event that dispatches nothing but sets
// EventSource's lastEventId), so that a client that resumes does so after
// it. Streaming it through instead would hold up every client's queue
// behind one event of unbounded size, and a break inside it would leave
// every client with half an event.
//
// Only the hub's upstream goroutine uses a sink, from inside the hub's
// upstream Writer, which holds its Writer.mu meanwhile (see the package
// doc): the sink takes registryMu (the answer) and Hub.mu (delivery) under
// it.
type sink struct {
	hub    *Hub
	header http.Header
	sc     buffer.Scanner
	cur    []byte // the event being assembled
	cut    bool   // the current event outgrew MaxEventSize and is skipped
	prevID string
	hasID  bool
	final  bool // the answer is not a stream: its body goes to the clients as it is
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
	if s.hub.link != nil {
		s.hub.link.answered(code, s.header, stream)
	}
}

func (s *sink) Write(p []byte) (int, error) {
	n := len(p)
	if s.final {
		s.hub.relayBody(p)
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
			switch {
			case s.cut:
			case s.sc.AtBoundary():
				// Only blank lines between events: nothing to hold.
				s.cur = s.cur[:0]
			case len(s.cur)+len(p) > s.hub.cfg.MaxEventSize:
				s.cutEvent()
			default:
				s.cur = append(s.cur, p...)
			}
			break
		}
		if !s.cut && len(s.cur)+i > s.hub.cfg.MaxEventSize {
			s.cutEvent()
		}
		var ev []byte
		if !s.cut {
			// The event's bytes pass to the replay buffer, which keeps
			// them: a new slice per event.
			ev = append(s.cur, p[:i]...)
		}
		s.cur, p = nil, p[i:]
		idb, has := s.sc.LastID()
		id := string(idb)
		own := has && (!s.hasID || id != s.prevID)
		s.prevID, s.hasID = id, has
		if s.cut {
			s.cut = false
			if !own {
				continue
			}
			ev = []byte("id: " + id + "\n\n")
		}
		s.hub.publish(ev, id, own)
	}
	return n, nil
}

// cutEvent lets go of the event being held: it is too big to hold.
func (s *sink) cutEvent() {
	s.cut, s.cur = true, nil
	s.hub.eventCut()
}

// restart prepares the sink for the next upstream response: an event the
// last one left incomplete is dropped, ids of complete events are kept.
func (s *sink) restart() {
	s.cur, s.cut = nil, false
	s.sc.Restart()
}

// FlushError: events are handed on as they complete; nothing to flush.
func (s *sink) FlushError() error { return nil }

// publish is the upstream side of the hub's event path: it hands a
// complete event to the hub's Store, which orders it and has the hub
// deliver it. Only the hub's upstream goroutine (its sink) publishes.
func (h *Hub) publish(ev []byte, id string, own bool) {
	h.store.Append(buffer.Event{Data: ev, ID: id, OwnID: own, At: time.Now()})
}
