package proxy

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what streams do. The collectors live for the whole process
// (counters must not restart on a config reload) and are registered in each
// config's registry by Register.
type Metrics struct {
	open       prometheus.Gauge
	events     prometheus.Counter
	heartbeats prometheus.Counter
	reconnects prometheus.Counter
	ended      *prometheus.CounterVec
	invalidIDs prometheus.Counter
}

// NewMetrics creates the collectors. Call it once per process.
func NewMetrics() *Metrics {
	const ns, sub = "caddy", "sse_proxy"
	return &Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "streams_open",
			Help: "Event streams open to clients.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_relayed_total",
			Help: "Events relayed from upstreams to clients.",
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "heartbeats_total",
			Help: "Heartbeat comment lines written to idle streams.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "upstream_reconnects_total",
			Help: "Upstream requests made again for a client stream that stayed open.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "streams_ended_total",
			Help: "Client streams ended, by reason.",
		}, []string{"reason"}),
		invalidIDs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "invalid_event_ids_total",
			Help: "Streams in which an upstream event id held a character no header can carry (counted once per stream).",
		}),
	}
}

// Register adds the collectors to reg; ones already there are kept.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.open, m.events, m.heartbeats, m.reconnects, m.ended, m.invalidIDs} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

func (m *Metrics) streamOpened() { m.open.Inc() }
func (m *Metrics) streamClosed(reason string) {
	m.open.Dec()
	m.ended.WithLabelValues(reason).Inc()
}

func (m *Metrics) reconnect() { m.reconnects.Inc() }
func (m *Metrics) heartbeat() { m.heartbeats.Inc() }
func (m *Metrics) invalidID() { m.invalidIDs.Inc() }

func (m *Metrics) relayed(events int) {
	if events > 0 {
		m.events.Add(float64(events))
	}
}
