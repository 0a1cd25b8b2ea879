// Package cluster holds the tests of shared streams across Caddy instances
// on Redis, on internal/testcluster: each instance is a caddy binary built
// from cmd/caddy and run as its own process (so that one can be killed or
// paused), all of them share one real redis-server that the tests start,
// and the upstream is a numbered event source that honours Last-Event-ID,
// so that every client can check that the ids it saw are consecutive.
//
// Without redis-server the tests skip, except when CI=true, where that is a
// failure.
package cluster
