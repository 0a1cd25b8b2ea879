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
	}
}

// Register adds the collectors to reg; ones already there are kept.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.open, m.events, m.heartbeats} {
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
func (m *Metrics) streamClosed() { m.open.Dec() }
func (m *Metrics) heartbeat()    { m.heartbeats.Inc() }

func (m *Metrics) relayed(events int) {
	if events > 0 {
		m.events.Add(float64(events))
	}
}
