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
	eventsCut    prometheus.Counter
	fallbacks    prometheus.Counter
	perStream    prometheus.Collector
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
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "store_fallbacks_total",
			Help: "Times a shared stream served its clients on its own because its cluster store did not answer (on_store_failure local)."}),
		eventsCut: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "shared_events_cut_total",
			Help: "Events of shared upstream streams dropped because they were larger than max_event_size."}),
		perStream: &subscriberHistogram{
			desc: prometheus.NewDesc(prometheus.BuildFQName(ns, sub, "shared_stream_subscribers"),
				"Clients of each running shared stream (lingering ones count 0), when scraped.", nil, nil),
			snapshot: subscriberCounts,
		},
	}
}

// subscriberBuckets are the upper bounds of the subscribers-per-stream
// histogram.
var subscriberBuckets = []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000}

// subscriberHistogram is the distribution of subscribers over the running
// shared streams, made when Prometheus scrapes: nothing is counted per
// event or per join, and a stream that ended leaves no series behind (a
// label per stream would).
type subscriberHistogram struct {
	desc     *prometheus.Desc
	snapshot func() []int
}

func (c *subscriberHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *subscriberHistogram) Collect(ch chan<- prometheus.Metric) {
	counts := c.snapshot()
	buckets := make(map[float64]uint64, len(subscriberBuckets))
	sum := 0
	for _, n := range counts {
		sum += n
		for _, le := range subscriberBuckets {
			if float64(n) <= le {
				buckets[le]++ // cumulative: every bound at or above n
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.desc, uint64(len(counts)), float64(sum), buckets)
}

// subscriberCounts returns the number of clients of every hub in the
// registry. It takes registryMu, then each Hub.mu in turn (the lock order).
func subscriberCounts() []int {
	registryMu.Lock()
	defer registryMu.Unlock()
	counts := make([]int, 0, len(registry))
	for _, h := range registry {
		h.mu.Lock()
		counts = append(counts, len(h.subs))
		h.mu.Unlock()
	}
	return counts
}

// Register adds the collectors to reg; ones already there are kept.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.hubs, m.subscribers, m.replayHits, m.replayMisses, m.evictions, m.eventsCut, m.fallbacks, m.perStream} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
