package share

import (
	"sync"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// Sub is one client's subscription: a queue the hub appends whole events to
// and a goroutine of the client's drains (see drain), so that a slow client
// never holds up anyone else. That goroutine is either the client's
// handler, woken by Signal, or (Wake) one started whenever the queue fills
// from empty.
type Sub struct {
	hub    *Hub
	signal chan struct{} // a token: there is something to take

	// mu guards the fields below it. It is last in the lock order
	// (registryMu → Hub.mu → Sub.mu): the hub takes it under Hub.mu to
	// queue (push) and to close; the client's drainer takes it alone. It
	// is never held across a write to the client; the one call under it
	// that reaches the network is cutConn (see cut).
	mu sync.Mutex
	// wake, when set, starts a goroutine to drain the queue, instead of a
	// token on signal; running is true while that goroutine runs.
	wake    func()
	running bool
	// replayed are the events a resuming client missed, shared with the
	// replay buffer; they go out before queue.
	replayed []buffer.Event
	// catchUp, while set, is the client's resume from a cluster store,
	// under way (see Hub.catchUp): its drainer has not started yet.
	catchUp *catchUp
	// queue holds the events queued for the client, oldest first: the
	// hub's own bytes of each (in its history too), shared by every
	// client and never modified, so an event is not copied per client.
	// queued is what they count against limit (see push): their length
	// in bytes, at least a slot's each.
	queue  [][]byte
	queued int
	// spare is the drainer's buffer for joining several events into one
	// batch; lent is true while the batch taken is an event's own bytes
	// (a queue of one), which Done must not keep.
	spare   []byte
	lent    bool
	limit   int
	active  bool // the client's handler is running
	evicted bool
	closed  bool // the hub is over
	// cutConn cuts the client's connection short (a write deadline in the
	// past), so that its goroutine, stuck writing, lets go.
	cutConn func()
}

// notify tells the drainer there is something to take: a token on signal,
// or, for a subscription served with Wake, the wake function to call (after
// the locks are let go) when no drainer runs. Callers hold s.mu.
func (s *Sub) notify() (wake func()) {
	if s.wake != nil {
		if !s.running {
			s.running = true
			return s.wake
		}
		return nil
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return nil
}

// Wake switches the subscription from Signal to wake: from now on, when
// there is something to take and no drainer runs, wake is called (it should
// start a goroutine) and that goroutine drains with TakeOrRest. A client
// served this way has no goroutine of its own while idle.
func (s *Sub) Wake(wake func()) {
	s.mu.Lock()
	s.wake = wake
	var start func()
	if len(s.queue) > 0 || len(s.replayed) > 0 || s.evicted || s.closed {
		start = s.notify()
	}
	s.mu.Unlock()
	if start != nil {
		start()
	}
}

// TakeOrRest is Take for a drainer that Wake started: when there is
// nothing to take, the drainer is done (rest is true) and the next event
// starts a new one. Once the client is evicted or the hub closed, the
// drainer gets that news once and none starts again.
func (s *Sub) TakeOrRest() (batch []byte, evicted, closed, rest bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 && len(s.replayed) == 0 && !s.evicted && !s.closed {
		s.running = false
		s.shrink()
		return nil, false, false, true
	}
	batch, more := s.next()
	return batch, s.evicted, s.closed && !more, false
}

// next takes the next batch: replayed events first, copied a batch of at
// most limit bytes (or one event) at a time, then the whole queue: one
// event as it is (lent), several joined in spare. more reports that
// something is left to take. Callers hold s.mu.
func (s *Sub) next() (batch []byte, more bool) {
	s.lent = false
	if len(s.replayed) == 0 {
		switch len(s.queue) {
		case 0:
			return nil, false
		case 1:
			// No room past the event: a writer that appended to the
			// batch would copy it, not write into the event's buffer.
			ev := s.queue[0]
			batch, s.lent = ev[:len(ev):len(ev)], true
		default:
			batch, s.spare = s.spare[:0], nil
			for _, ev := range s.queue {
				batch = append(batch, ev...)
			}
		}
		s.dropQueue()
		return batch, false
	}
	batch, s.spare = s.spare[:0], nil
	n := 0
	for n < len(s.replayed) && (n == 0 || len(batch)+len(s.replayed[n].Data) <= s.limit) {
		batch = append(batch, s.replayed[n].Data...)
		s.replayed[n] = buffer.Event{} // let the buffer drop it
		n++
	}
	s.replayed = s.replayed[n:]
	if len(s.replayed) == 0 {
		s.replayed = nil
	}
	return batch, len(s.replayed) > 0 || len(s.queue) > 0
}

// shrink lets go of the queue's and the spare buffer's memory, when large,
// once the client has nothing left to take: an idle client keeps no large
// buffer from a burst. Callers hold s.mu.
func (s *Sub) shrink() {
	if len(s.queue) > 0 || len(s.replayed) > 0 {
		return // the client lags: its next batch reuses them
	}
	if cap(s.queue) > 64 {
		s.queue = nil
	}
	if cap(s.spare) > 4<<10 {
		s.spare = nil
	}
}

// dropQueue empties the queue, letting go of its events. Callers hold
// s.mu.
func (s *Sub) dropQueue() {
	clear(s.queue)
	s.queue, s.queued = s.queue[:0], 0
}

// Signal is ready to receive when there is something to Take.
func (s *Sub) Signal() <-chan struct{} { return s.signal }

// Take returns what is queued, to be written in one go, and whether the
// client was evicted or the hub closed (once nothing is left to take).
// Replayed events come a batch at a time; while more is left, Signal has
// a token again. Give the slice back with Done.
func (s *Sub) Take() (batch []byte, evicted, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch, more := s.next()
	if more {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
	return batch, s.evicted, s.closed && !more
}

// Done returns a batch's memory for reuse, unless it grew large or is an
// event's own bytes (lent by next). A client with nothing left to take
// keeps only a small one (see shrink): a handler's client, drained with
// Take, has no other moment to let go of a burst's buffers.
func (s *Sub) Done(batch []byte) {
	s.mu.Lock()
	if !s.lent && cap(batch) <= 64<<10 {
		s.spare = batch[:0]
	}
	s.lent = false
	s.shrink()
	s.mu.Unlock()
}
