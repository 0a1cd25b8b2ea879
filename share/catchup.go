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
// Hub.catchUp); meanwhile its queue gets the live ones.
type catchUp struct {
	id string
}

// follows records where in the store a cluster hub starts to follow it
// (see catchUp).
func (h *Hub) follows(p position) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.positioned {
		return // link.run follows once; this keeps followed from closing twice
	}
	h.pos, h.positioned = p, true
	close(h.followed)
}

// startCatchUp notes that s (joining now, under h.mu) resumes from id,
// which the hub's history does not hold, so the store must be asked.
func (h *Hub) startCatchUp(s *Sub, id string) {
	s.catchUp = &catchUp{id: id}
}

// catchUp gives s the events after its Last-Event-ID from the cluster
// store, before its drainer starts. The client joins live when the store
// does not hold the id (unknown, trimmed, or from before the store lost
// its data), or does not answer. It runs on the client's goroutine, with
// no lock held (it asks the store), and waits at most a lease.
func (h *Hub) catchUp(s *Sub) {
	lease := h.link.cl.Lease()
	ctx, cancel := context.WithTimeout(h.ctx, lease)
	defer cancel()
	select {
	case <-h.followed:
	case <-ctx.Done():
	}
	s.mu.Lock()
	id := s.catchUp.id
	s.mu.Unlock()
	var events []buffer.Event
	ok := false
	select {
	case <-h.followed:
		events, ok = h.storedAfter(ctx, s, id)
	default:
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

// lagWait bounds how long a catch-up waits for a hub that has not yet
// delivered the client's id (its follower is a little behind the store).
const lagWait = time.Second

// storedAfter reads the events after id from the store, up to the hub's
// position p at one moment, and empties s's queue at that moment: what
// the hub queued for s before it are events up to p, which s gets from
// the store instead, in their place, and what it queues after it follows
// them. A hub that has not delivered id yet is waited for (at most
// lagWait): its queue would repeat events the client has.
func (h *Hub) storedAfter(ctx context.Context, s *Sub, id string) ([]buffer.Event, bool) {
	entries, epoch, next, ok, err := h.link.st.Since(ctx, id)
	if err != nil {
		h.link.storeError("reading the events to replay", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	found := next - uint64(len(entries)) // id's entry: those after it follow without a gap
	lag, cancel := context.WithTimeout(ctx, lagWait)
	defer cancel()
	var p position
	for {
		h.mu.Lock()
		p = h.pos
		if p.epoch == epoch && p.offset >= found && p.offset <= next {
			s.mu.Lock()
			s.dropQueue()
			s.mu.Unlock()
			h.mu.Unlock()
			break
		}
		h.mu.Unlock()
		if p.epoch == epoch && p.offset > next {
			// Events the hub delivered after the store was read.
			more, err := h.link.st.Range(ctx, epoch, next, int(p.offset-next))
			if err != nil {
				h.link.storeError("reading the events to replay", err)
				return nil, false
			}
			if len(more) == 0 {
				return nil, false
			}
			entries, next = append(entries, more...), more[len(more)-1].Offset
			continue
		}
		select {
		case <-lag.Done():
			return nil, false
		case <-time.After(5 * time.Millisecond):
		}
	}
	now := time.Now()
	events := make([]buffer.Event, 0, len(entries))
	for _, e := range entries {
		if e.Offset > p.offset {
			break // the queue has it
		}
		events = append(events, buffer.Event{Data: e.Data, ID: e.ID, OwnID: e.Own, At: now})
	}
	return events, true
}
