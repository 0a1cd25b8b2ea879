package share

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// Clients that resume from the oldest event in the replay buffer and then
// read nothing (a stalled or hostile client) must not each hold a copy of
// the buffer: the buffer's events are shared, and what a client holds of
// its own is bounded by client_buffer. Each still gets every event after
// its id, in order, in batches of at most client_buffer (or one event).
func TestResumingClientsShareTheReplayBuffer(t *testing.T) {
	const events, size, clients = 32, 64 << 10, 50
	cfg := &Config{
		Replay:       buffer.ReplayLimits{MaxEvents: 1000, MaxBytes: 8 << 20},
		ClientBuffer: 256 << 10,
		MaxEventSize: 1 << 20,
		Logger:       zap.NewNop(),
	}
	h := newHub("replay-share-test", cfg)
	t.Cleanup(h.cancel)
	var all bytes.Buffer
	for i := 1; i <= events; i++ {
		ev := []byte(fmt.Sprintf("id: %d\ndata: %s\n\n", i, strings.Repeat("x", size)))
		h.publish(ev, fmt.Sprint(i), true)
		if i > 1 {
			all.Write(ev)
		}
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	subs := make([]*Sub, clients)
	for i := range subs {
		subs[i] = h.subscribe("1")
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if copyAll := int64(clients * all.Len()); grown > copyAll/10 {
		t.Errorf("%d resuming clients grew the heap by %d MiB (a copy of the replay each is %d MiB)", clients, grown>>20, copyAll>>20)
	}

	// One drained with Signal and Take, one with Wake and TakeOrRest.
	var got bytes.Buffer
	for {
		select {
		case <-subs[0].Signal():
		default:
			t.Fatalf("no signal with %d of %d bytes taken", got.Len(), all.Len())
		}
		batch, evicted, closed := subs[0].Take()
		if evicted || closed {
			t.Fatalf("evicted %v, closed %v", evicted, closed)
		}
		if len(batch) > cfg.ClientBuffer+size+100 {
			t.Errorf("a batch of %d bytes, over client_buffer and one event", len(batch))
		}
		got.Write(batch)
		subs[0].Done(batch)
		if got.Len() >= all.Len() {
			break
		}
	}
	if !bytes.Equal(got.Bytes(), all.Bytes()) {
		t.Errorf("Take: got %d bytes, not the %d bytes of the events after id 1 in order", got.Len(), all.Len())
	}

	got.Reset()
	woken := make(chan struct{}, 1)
	subs[1].Wake(func() { woken <- struct{}{} })
	<-woken
	for {
		batch, evicted, closed, rest := subs[1].TakeOrRest()
		if evicted || closed {
			t.Fatalf("evicted %v, closed %v", evicted, closed)
		}
		if rest {
			break
		}
		got.Write(batch)
	}
	if !bytes.Equal(got.Bytes(), all.Bytes()) {
		t.Errorf("TakeOrRest: got %d bytes, not the %d bytes of the events after id 1 in order", got.Len(), all.Len())
	}
	for _, s := range subs {
		h.Leave(s)
	}
}
