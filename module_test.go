package sseproxy_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

func TestStreamsEventsOverEveryProtocol(t *testing.T) {
	for _, p := range testcaddy.Protos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				sseHeaders(w)
				write(w, "id: 1\ndata: one\n\n")
				<-r.Context().Done()
			})
			base := startSite(t, "sse_proxy "+up.addr())
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", nil)
			if s.Resp.Proto != string(p) {
				t.Fatalf("proto %s, want %s", s.Resp.Proto, p)
			}
			s.WaitFor(t, "data: one\n\n", 5*time.Second)
		})
	}
}
