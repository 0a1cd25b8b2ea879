package share

import "unsafe"

// push queues an event, or evicts the client when its queue is full. An
// event always goes into an empty queue, however large (the sink cuts
// events over max_event_size): a client that keeps up is never evicted for
// the size of one event, so a queue holds at most the larger of
// client_buffer and max_event_size. It returns the drainer to start, if
// any (see notify). ev is kept, not copied (see Sub.queue), and counts
// as its length or its slot in the queue, whichever is more (see
// queuedSize). Called with h.mu held; takes s.mu.
func (s *Sub) push(ev []byte) (wake func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicted || s.closed || !s.active {
		return nil
	}
	n := queuedSize(ev)
	if s.queued > 0 && s.queued+n > s.limit {
		s.evicted = true
		s.dropQueue()
		s.replayed = nil
		if m := s.hub.cfg.Metrics; m != nil {
			m.evictions.Inc()
		}
		go s.cut() // not here: the hub's lock is held
		return s.notify()
	}
	s.queue = append(s.queue, ev)
	s.queued += n
	return s.notify()
}

// queueSlot is the size of an event's slot in a client's queue (a slice).
const queueSlot = int(unsafe.Sizeof([]byte(nil)))

// queuedSize is what an event counts against client_buffer: its length,
// or the slot that holds it, whichever is more. The event's bytes are the
// hub's, shared by every client, but the slot is the client's own: on a
// stream of tiny events (keep-alive comments) the slots are what a client
// that reads nothing costs, and client_buffer bounds them too.
func queuedSize(ev []byte) int {
	return max(len(ev), queueSlot)
}

// OnEvict sets how to cut the client's connection when it is evicted. f
// runs on another goroutine, with s.mu held (so it must not take a lock of
// this package, nor write to the client), but never after Leave.
func (s *Sub) OnEvict(f func()) {
	s.mu.Lock()
	s.cutConn = f
	s.mu.Unlock()
}

// cut runs cutConn unless the client's handler has finished: a write
// deadline on a finished HTTP/2 response panics. s.mu is held across
// cutConn for that reason (Leave clears active under it); cutConn only sets
// a deadline or closes a connection, and waits for no client.
func (s *Sub) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active && s.cutConn != nil {
		s.cutConn()
	}
}

// isEvicted reports whether the hub evicted the client.
func (s *Sub) isEvicted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evicted
}
