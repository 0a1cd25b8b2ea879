package share

import (
	"bytes"
	"fmt"
	"testing"
)

// A batch that is one event's own bytes has no room past the event: a
// writer that appended to it would copy, not write into the bytes that
// follow the event in its buffer.
func TestLentBatchHasNoRoomToGrow(t *testing.T) {
	h := newHub("queue-share-lent", shareConfig())
	defer h.cancel()
	s := h.subscribe("")
	ev := make([]byte, 0, 64)
	ev = append(ev, "id: 1\ndata: x\n\n"...)
	h.publish(ev, "1", true)
	<-s.Signal()
	b, _, _ := s.Take()
	if !bytes.Equal(b, ev) {
		t.Fatalf("took %q, want %q", b, ev)
	}
	if cap(b) != len(b) {
		t.Errorf("a lent batch of %d bytes has room for %d", len(b), cap(b))
	}
	s.Done(b)
	h.Leave(s)
}

// A client that lagged (its batches joined in its spare buffer) and then
// took everything keeps no event and no large buffer while it is idle,
// whether its handler drains it (Take) or a woken goroutine (TakeOrRest).
func TestDrainedClientHoldsNoEventsNorLargeBuffers(t *testing.T) {
	for _, woken := range []bool{false, true} {
		t.Run(fmt.Sprintf("woken=%v", woken), func(t *testing.T) {
			h := newHub(fmt.Sprintf("queue-share-idle-%v", woken), shareConfig())
			defer h.cancel()
			s := h.subscribe("")
			if woken {
				s.Wake(func() {}) // the test drains
			}
			take := func() []byte {
				if woken {
					b, _, _, rest := s.TakeOrRest()
					if rest {
						return nil
					}
					return b
				}
				select {
				case <-s.Signal():
				default:
					return nil
				}
				b, _, _ := s.Take()
				return b
			}
			for round := range 3 {
				// A burst while the client writes nothing: events of 1
				// KiB, joined into one batch (over 64 KiB in the first
				// round, not in the others).
				burst := 200
				if round > 0 {
					burst = 40
				}
				for i := range burst {
					h.publish(bytes.Repeat([]byte{'a' + byte(round)}, 1<<10), fmt.Sprint(i), true)
				}
				for b := take(); b != nil; b = take() {
					s.Done(b)
				}
				// Then events one at a time.
				for i := range 5 {
					h.publish([]byte(fmt.Sprintf("data: %d\n\n", i)), "", false)
					b := take()
					if b == nil {
						t.Fatal("nothing to take after an event")
					}
					s.Done(b)
				}
				if woken {
					if b := take(); b != nil {
						t.Fatalf("took %q, want a rest", b)
					}
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.queue) != 0 || s.queued != 0 || len(s.replayed) != 0 {
				t.Errorf("idle with %d events (%d bytes) queued, %d replayed", len(s.queue), s.queued, len(s.replayed))
			}
			for i, ev := range s.queue[:cap(s.queue)] {
				if ev != nil {
					t.Errorf("the queue's slot %d still holds an event of %d bytes", i, len(ev))
				}
			}
			if cap(s.queue) > 64 {
				t.Errorf("idle with room for %d events in its queue", cap(s.queue))
			}
			if cap(s.spare) > 4<<10 {
				t.Errorf("idle with a spare buffer of %d bytes", cap(s.spare))
			}
		})
	}
}
