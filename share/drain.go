package share

// client is how drain reaches one shared client. A client is drained by one
// goroutine at a time, which calls these methods, holding no lock of this
// package. Two kinds implement it: keptClient, served by its handler
// goroutine (HTTP/2, HTTP/3, an HTTP/1.x connection that cannot be taken
// over), and connClient, an HTTP/1.x connection taken over from net/http.
type client interface {
	// take waits for the next batch as the client's kind does (see
	// Sub.Take and Sub.TakeOrRest). stop ends the drainer: the client left,
	// or there is nothing to take and the drainer rests until woken.
	take() (batch []byte, evicted, closed, stop bool)
	// write writes a batch to the client (and flushes it, if the answer is
	// not a stream).
	write(batch []byte) error
	// failed is called after a write failed and the client was not
	// evicted: the client is gone.
	failed()
	// evict ends the stream of a client that was too slow, so that it
	// resumes from the replay buffer; it may not return (a handler's
	// abort).
	evict()
	// end ends the stream because the hub is over (its upstream ended for
	// good), once everything queued was written; it may not return.
	end()
}

// drain writes what the hub queues for s to c, one write per batch, until
// the drainer stops, the client is gone, evicted, or the hub is over. It is
// the one place where those endings are told apart.
func drain(s *Sub, c client) {
	for {
		batch, evicted, closed, stop := c.take()
		if stop {
			return
		}
		if len(batch) > 0 {
			err := c.write(batch)
			s.Done(batch)
			if err != nil && !evicted {
				// A write that failed because the hub cut the client
				// (eviction) is an eviction; any other, a client gone.
				if evicted = s.isEvicted(); !evicted {
					c.failed()
					return
				}
			}
		}
		if evicted {
			c.evict()
			return
		}
		if closed {
			c.end()
			return
		}
	}
}
