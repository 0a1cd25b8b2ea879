package share

import (
	"bytes"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// deliver is the delivery side of the hub's event path: it adds an event,
// in the order its Store gives it, to the hub's history and to every
// client's queue, under h.mu (then s.mu per client, in push). Only the
// hub's Store calls it, one event at a time (see Store), with no lock of
// this package held. The drainers that need starting are started after
// h.mu is let go, so that joining and leaving clients do not wait for
// them.
func (h *Hub) deliver(ev buffer.Event) {
	h.mu.Lock()
	h.history.Add(ev, time.Now())
	h.lastID = ev.ID
	wakes := queueAll(h, ev.Data, h.deliverWakes[:0])
	h.mu.Unlock()
	h.deliverWakes = startDrainers(wakes)
}

// deliverEntry is deliver for an event of a cluster store, which also
// records the event's place in the store (see catchUp). An event that
// does not carry an id keeps the last one, as a browser does (a store
// need not keep the id such an event inherits).
func (h *Hub) deliverEntry(e Entry) {
	ev := buffer.Event{Data: e.Data, ID: e.ID, OwnID: e.Own, At: time.Now()}
	h.mu.Lock()
	if !e.Own {
		ev.ID = h.lastID
	}
	h.history.Add(ev, ev.At)
	h.lastID = ev.ID
	h.pos = position{epoch: e.Epoch, offset: e.Offset}
	wakes := queueAll(h, ev.Data, h.deliverWakes[:0])
	h.mu.Unlock()
	h.deliverWakes = startDrainers(wakes)
}

// lastDeliveredID is the id of the newest event delivered, "" for none.
func (h *Hub) lastDeliveredID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastID
}

// relayBody queues part of a final answer's body for every client, as it
// comes; a client that falls client_buffer behind is evicted. It is not an
// event: it is kept in no history and goes through no Store, as the answer
// itself does not. Only the hub's upstream goroutine calls it, and only for
// a hub whose answer is not a stream, which delivers no events.
func (h *Hub) relayBody(p []byte) {
	p = bytes.Clone(p) // the caller's buffer; queued by reference below
	h.mu.Lock()
	wakes := queueAll(h, p, h.relayWakes[:0])
	h.mu.Unlock()
	h.relayWakes = startDrainers(wakes)
}

// queueAll queues p for every client of h, appending the drainers to start
// once h.mu, which the caller holds, is let go to wakes. p is queued by
// reference, not copied (see Sub.queue): nobody may modify it afterwards.
func queueAll(h *Hub, p []byte, wakes []func()) []func() {
	for s := range h.subs {
		if wake := s.push(p); wake != nil {
			wakes = append(wakes, wake)
		}
	}
	return wakes
}

// startDrainers calls the wake functions queueAll returned, without h.mu,
// and returns the list emptied, for reuse.
func startDrainers(wakes []func()) []func() {
	for i, wake := range wakes {
		wake()
		wakes[i] = nil
	}
	return wakes[:0]
}
