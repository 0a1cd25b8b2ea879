package share

import (
	"context"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// position is a place in a cluster store's order: the events after offset
// in epoch come next.
type position struct {
	epoch  string
	offset uint64
}

// catchUp is a cluster hub's client that resumes from an id its process
// does not hold: the events after the id come from the store (see
// Hub.catchUp), those up to upTo, the store's place of the newest event
// the hub delivered when the client joined; its queue holds what came
// after.
type catchUp struct {
	id   string
	upTo position
	// known is false until the hub follows the store; upTo is then set
	// when it starts to (see follows).
	known bool
}

// follows records where in the store a cluster hub starts to follow it:
// the clients that joined before learn where their catch-up ends.
func (h *Hub) follows(p position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.positioned {
		return // a follow again, after the store was unreachable
	}
	h.pos, h.positioned = p, true
	for s := range h.subs {
		s.mu.Lock()
		if c := s.catchUp; c != nil && !c.known {
			c.upTo, c.known = p, true
		}
		s.mu.Unlock()
	}
	close(h.followed)
}

// startCatchUp notes that s (joining now, under h.mu) resumes from id,
// which the hub's history does not hold, so the store must be asked.
func (h *Hub) startCatchUp(s *Sub, id string) {
	c := &catchUp{id: id}
	if h.positioned {
		c.upTo, c.known = h.pos, true
	}
	s.catchUp = c
}

// catchUp gives s the events after its Last-Event-ID from the cluster
// store, up to where its queue starts, before its drainer starts. The
// client joins live when the store does not hold the id (unknown,
// trimmed, or from before the store lost its data), or does not answer.
// It runs on the client's goroutine, with no lock held (it asks the
// store), and waits at most a lease.
func (h *Hub) catchUp(s *Sub) {
	lease := h.link.cl.Lease()
	ctx, cancel := context.WithTimeout(h.ctx, lease)
	defer cancel()
	select {
	case <-h.followed:
	case <-ctx.Done():
	}
	s.mu.Lock()
	c := *s.catchUp
	s.mu.Unlock()
	var events []buffer.Event
	ok := false
	if c.known {
		events, ok = h.storedAfter(ctx, c.id, c.upTo)
	}
	if m := h.cfg.Metrics; m != nil {
		if ok {
			m.replayHits.Inc()
		} else {
			m.replayMisses.Inc()
		}
	}
	s.mu.Lock()
	s.catchUp = nil
	s.replayed = events
	wake := s.notify()
	s.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// storedAfter reads the events after id up to upTo from the store.
func (h *Hub) storedAfter(ctx context.Context, id string, upTo position) ([]buffer.Event, bool) {
	entries, epoch, next, ok, err := h.link.st.Since(ctx, id)
	if err != nil {
		h.link.storeError("reading the events to replay", err)
		return nil, false
	}
	if !ok || epoch != upTo.epoch {
		return nil, false
	}
	if next < upTo.offset {
		// Events the hub delivered after the store was read.
		more, err := h.link.st.Range(ctx, epoch, next, int(upTo.offset-next))
		if err != nil {
			h.link.storeError("reading the events to replay", err)
			return nil, false
		}
		entries = append(entries, more...)
	}
	now := time.Now()
	events := make([]buffer.Event, 0, len(entries))
	for _, e := range entries {
		if e.Epoch != upTo.epoch || e.Offset > upTo.offset {
			break // the queue has it
		}
		events = append(events, buffer.Event{Data: e.Data, ID: e.ID, OwnID: e.Own, At: now})
	}
	return events, true
}
