package proxy

import (
	"sync"
	"time"
)

// Streams is the set of open streams of one handler, so that they can all
// be ended together when the server shuts down or the config is reloaded.
type Streams struct {
	// mu guards set, closing and hint. It is held across no I/O, and
	// taken after Writer.mu (add and remove run with the writer's lock
	// held), so EndAll ends the writers only after releasing it.
	mu      sync.Mutex
	set     map[*Writer]struct{}
	closing bool          // EndAll ran: streams that open from now on end at once
	hint    func() []byte // EndAll's hint, for those streams
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
	// client that stopped reading must not hold up the others. End cuts
	// off a client whose write is stuck for stuckWrite; EndAll waits for
	// them until grace and a second have passed.
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
