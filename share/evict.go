package share

// push queues an event, or evicts the client when its queue is full. An
// event always goes into an empty queue, however large (the sink cuts
// events over max_event_size): a client that keeps up is never evicted for
// the size of one event, so a queue holds at most the larger of
// client_buffer and max_event_size. It returns the drainer to start, if
// any (see notify). ev is kept, not copied (see Sub.queue). Called with
// h.mu held; takes s.mu.
func (s *Sub) push(ev []byte) (wake func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicted || s.closed || !s.active {
		return nil
	}
	if s.queued > 0 && s.queued+len(ev) > s.limit {
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
	s.queued += len(ev)
	return s.notify()
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
