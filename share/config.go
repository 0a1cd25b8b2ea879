package share

import (
	"time"

	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// Config is what a hub needs from the handler that starts it.
type Config struct {
	// Linger is how long a hub without clients keeps its upstream stream.
	Linger time.Duration
	// Replay bounds the events kept for clients that resume.
	Replay buffer.ReplayLimits
	// ClientBuffer is the most bytes queued for one client before it is
	// evicted as too slow.
	ClientBuffer int
	// MaxEventSize bounds an event held while incomplete: a larger one is
	// cut (see sink).
	MaxEventSize int
	// Reconnect is the upstream reconnect policy. Its Hint should return
	// nil: when the hub gives up, each client ends with a hint of its own.
	Reconnect *proxy.Reconnect
	// Cluster, when set, is a store that the hubs of several processes
	// share (Redis): one process reads each key's upstream, and every
	// process delivers the store's events in the store's order. Nil: the
	// hub's own process is the whole story (the memory store).
	Cluster Cluster
	// Logger and Metrics are the handler's.
	Logger  *zap.Logger
	Metrics *Metrics

	// cutLog rate-limits the warning about cut events across the hubs of
	// a handler.
	cutLog proxy.RateLog
}
