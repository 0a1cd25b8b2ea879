// Package testcluster runs a cluster of Caddy instances for tests: each
// instance is a caddy binary built from cmd/caddy and run as its own process
// (so that a test can kill or pause it), all of them share one real
// redis-server (internal/redistest), and the upstream is a numbered event
// source that honours Last-Event-ID, so that a client can check that the
// ids it saw are consecutive.
//
// Every process is stopped by its process id when the test ends. Without
// redis-server the test skips, except when CI=true, where that is a
// failure.
package testcluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
)

// Lease is the store lease the clusters run with: short, so that failovers
// are quick, and long enough for a busy machine to renew it.
const Lease = 2 * time.Second

// site is the Caddyfile site of every instance: a shared stream on Redis
// in front of the numbered upstream, at /feed (any path but /health).
const site = `https://127.0.0.1:{PORT} {
	tls {CERT} {KEY}
	handle /health {
		respond 200
	}
	handle {
		sse_proxy {UPSTREAM} {
			# Each instance has a port of its own, so the default key
			# (which covers the Host) would differ; behind one load
			# balancer, instances see the same Host.
			share {http.request.uri}
			store redis {REDIS} {
				lease {LEASE}
			}
			share_linger 1s
			reconnect 50ms 250ms
			reconnect_for 1m
{OPTIONS}		}
	}
}
`

// Site is the Caddyfile site of a cluster's instances (for StartInstance):
// sse_proxy with share {http.request.uri}, store redis at redisAddr with
// lease, in front of upstreamAddr; options are extra sse_proxy
// subdirectives, one a line (such as "retry 500ms"), and an extra line in
// lease's value lands in the store block (such as "2s\non_store_failure
// error").
func Site(upstreamAddr, redisAddr, lease string, options ...string) string {
	var opts strings.Builder
	for _, o := range options {
		fmt.Fprintf(&opts, "\t\t\t%s\n", o)
	}
	lease = strings.ReplaceAll(lease, "\n", "\n\t\t\t\t")
	return strings.NewReplacer("{UPSTREAM}", upstreamAddr, "{REDIS}", redisAddr,
		"{LEASE}", lease, "{OPTIONS}", opts.String()).Replace(site)
}

// Cluster is n instances on one Redis in front of one numbered upstream.
type Cluster struct {
	Redis     *redistest.Server
	Upstream  *Numbered
	Instances []*Instance // named caddy-a, caddy-b, ...
}

// Start runs a cluster of n instances, started side by side, whose
// upstream makes an event every interval, until the test ends. options
// are extra sse_proxy subdirectives (see Site). A test that checks for
// leaked goroutines registers that check before calling Start.
func Start(t *testing.T, n int, interval time.Duration, options ...string) *Cluster {
	t.Helper()
	c := &Cluster{Redis: redistest.Start(t), Upstream: NewNumbered(t, interval)}
	cf := Site(c.Upstream.Addr(), c.Redis.Addr(), Lease.String(), options...)
	var wg sync.WaitGroup
	c.Instances = make([]*Instance, n)
	for i := range c.Instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := startInstance(t, fmt.Sprintf("caddy-%c", 'a'+i), cf)
			if err != nil {
				t.Error(err) // t.Fatal must not be called outside the test's goroutine
				return
			}
			c.Instances[i] = in
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return c
}
