package share

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSubscriberHistogramCountsStreamsByTheirClients(t *testing.T) {
	m := NewMetrics()
	h := m.perStream.(*subscriberHistogram)
	h.snapshot = func() []int { return []int{0, 1, 3, 120, 30000} }
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP caddy_sse_proxy_shared_stream_subscribers Clients of each running shared stream (lingering ones count 0), when scraped.
# TYPE caddy_sse_proxy_shared_stream_subscribers histogram
caddy_sse_proxy_shared_stream_subscribers_bucket{le="0"} 1
caddy_sse_proxy_shared_stream_subscribers_bucket{le="1"} 2
caddy_sse_proxy_shared_stream_subscribers_bucket{le="2"} 2
caddy_sse_proxy_shared_stream_subscribers_bucket{le="5"} 3
caddy_sse_proxy_shared_stream_subscribers_bucket{le="10"} 3
caddy_sse_proxy_shared_stream_subscribers_bucket{le="25"} 3
caddy_sse_proxy_shared_stream_subscribers_bucket{le="50"} 3
caddy_sse_proxy_shared_stream_subscribers_bucket{le="100"} 3
caddy_sse_proxy_shared_stream_subscribers_bucket{le="250"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="500"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="1000"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="2500"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="5000"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="10000"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="25000"} 4
caddy_sse_proxy_shared_stream_subscribers_bucket{le="+Inf"} 5
caddy_sse_proxy_shared_stream_subscribers_sum 30124
caddy_sse_proxy_shared_stream_subscribers_count 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "caddy_sse_proxy_shared_stream_subscribers"); err != nil {
		t.Fatal(err)
	}
}
