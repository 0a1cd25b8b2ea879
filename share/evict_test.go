package share

import (
	"testing"
	"unsafe"
)

// A client that reads nothing, on a stream of tiny events (an upstream's
// keep-alive comments, 3 bytes each): its queue holds a slice of each,
// not a copy, and those slices are what it costs. client_buffer bounds
// that cost too, so the client is evicted before its queue's own memory
// outgrows the buffer (twice over at most, for the room append leaves).
func TestTinyEventsQueueBoundedByClientBuffer(t *testing.T) {
	cfg := shareConfig()
	cfg.ClientBuffer = 64 << 10
	h := newHub("evict-tiny-events", cfg)
	defer h.cancel()
	s := h.subscribe("")
	slot := int(unsafe.Sizeof([]byte(nil)))
	most := 0
	for i := 0; i < 1<<20; i++ {
		h.publish([]byte(":\n\n"), "", false)
		s.mu.Lock()
		evicted, held := s.evicted, cap(s.queue)*slot
		s.mu.Unlock()
		if evicted {
			break
		}
		most = max(most, held)
	}
	if !s.isEvicted() {
		t.Fatal("a client that reads nothing was never evicted")
	}
	if most > 2*cfg.ClientBuffer {
		t.Errorf("the queue held %d bytes of slices with client_buffer %d", most, cfg.ClientBuffer)
	}
	h.Leave(s)
}
