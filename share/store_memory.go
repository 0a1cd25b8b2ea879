package share

import "github.com/sse-proxy/caddy-sse-proxy/buffer"

// memoryStore is the in-process Store: the upstream's order is the order,
// and each event is delivered at once, on the upstream goroutine, from
// inside Append. It starts no goroutine and holds nothing: the history is
// the hub's.
type memoryStore struct {
	deliver func(buffer.Event)
}

func newMemoryStore(deliver func(buffer.Event)) *memoryStore {
	return &memoryStore{deliver: deliver}
}

// Append delivers ev before it returns.
func (m *memoryStore) Append(ev buffer.Event) { m.deliver(ev) }

// Close has nothing to stop.
func (m *memoryStore) Close() {}
