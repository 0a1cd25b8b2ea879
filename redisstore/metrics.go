package redisstore

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the redis store does. The package keeps one for the
// process (see metrics); Register it with each config's registry.
type Metrics struct {
	errors       prometheus.Counter
	leasesWon    prometheus.Counter
	leasesLost   prometheus.Counter
	failovers    prometheus.Counter
	appends      prometheus.Counter
	replayHits   prometheus.Counter
	replayMisses prometheus.Counter
}

// metrics is the process's one set of collectors, shared by every client.
var metrics = NewMetrics()

// ProcessMetrics returns the collectors every Client of this process
// counts into.
func ProcessMetrics() *Metrics { return metrics }

// NewMetrics creates the collectors.
func NewMetrics() *Metrics {
	const ns, sub = "caddy", "sse_proxy"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	return &Metrics{
		errors:       counter("store_errors_total", "Commands to the shared-stream store (Redis) that failed."),
		leasesWon:    counter("store_leases_won_total", "Stream leases this instance won: it became the stream's upstream reader."),
		leasesLost:   counter("store_leases_lost_total", "Stream leases this instance held and lost (expired or taken over) before releasing them."),
		failovers:    counter("store_failovers_total", "Stream leases won while a previous holder's entries were in the store."),
		appends:      counter("store_appends_total", "Events appended to the store (replayed duplicates not counted)."),
		replayHits:   counter("store_replay_hits_total", "Last-Event-IDs found in the store."),
		replayMisses: counter("store_replay_misses_total", "Last-Event-IDs unknown to the store or trimmed from it."),
	}
}

// Register adds the collectors to reg; ones already there are kept.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.errors, m.leasesWon, m.leasesLost, m.failovers, m.appends, m.replayHits, m.replayMisses} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
