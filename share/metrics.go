package share

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what shared streams do; create it once per process and
// Register it with each config's registry.
type Metrics struct {
	hubs         prometheus.Gauge
	subscribers  prometheus.Gauge
	replayHits   prometheus.Counter
	replayMisses prometheus.Counter
	evictions    prometheus.Counter
}

// NewMetrics creates the collectors.
func NewMetrics() *Metrics {
	const ns, sub = "caddy", "sse_proxy"
	return &Metrics{
		hubs: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "shared_streams_open",
			Help: "Shared upstream streams running."}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "shared_subscribers",
			Help: "Clients subscribed to shared streams."}),
		replayHits: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replay_hits_total",
			Help: "Clients resumed from the replay buffer by Last-Event-ID."}),
		replayMisses: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replay_misses_total",
			Help: "Clients whose Last-Event-ID was unknown or too old; they joined live."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "slow_client_evictions_total",
			Help: "Clients evicted because their queue exceeded client_buffer."}),
	}
}

// Register adds the collectors to reg; ones already there are kept.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.hubs, m.subscribers, m.replayHits, m.replayMisses, m.evictions} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
