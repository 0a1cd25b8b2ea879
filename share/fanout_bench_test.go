package share

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// BenchmarkHubFanout is the shared hot path without a network: one event
// published to a hub of 100 clients, each of which takes its batch and
// gives it back. It reports the allocations per event (the event's own
// copy for the replay buffer is the only one expected).
func BenchmarkHubFanout(b *testing.B) {
	cfg := &Config{
		Replay:       buffer.ReplayLimits{MaxEvents: 1000, MaxBytes: 8 << 20},
		ClientBuffer: 1 << 20,
		MaxEventSize: 1 << 20,
		Logger:       zap.NewNop(),
	}
	h := newHub("fanout-bench", cfg)
	b.Cleanup(h.cancel)
	subs := make([]*Sub, 100)
	for i := range subs {
		subs[i] = h.subscribe("")
	}
	ev := []byte(fmt.Sprintf("id: 1\ndata: %0240d\n\n", 0))
	b.ReportAllocs()
	b.SetBytes(int64(len(ev) * len(subs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.publish(append([]byte(nil), ev...), "1", true)
		for _, s := range subs {
			<-s.Signal()
			batch, _, _ := s.Take()
			s.Done(batch)
		}
	}
}
