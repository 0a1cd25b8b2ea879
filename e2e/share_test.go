package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestSharedStreamOverHTTP1ResumesAfterTheProxyEndsIt: three EventSources
// on a shared stream over HTTP/1.1 (whose connections the proxy takes over
// from Caddy's server) get the same events from one upstream request; when
// max_age ends their streams, each browser reconnects after the retry hint
// with its Last-Event-ID and resumes from the replay buffer: no event lost
// or repeated, still one upstream request.
func TestSharedStreamOverHTTP1ResumesAfterTheProxyEndsIt(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			for i := 1; ; i++ {
				send(w, fmt.Sprintf("id: %d\ndata: %d\n\n", i, i))
				select {
				case <-time.After(100 * time.Millisecond):
				case <-r.Context().Done():
					return
				}
			}
		})
		s := startSitesWith(t, up, "h1", "share", "max_age 1500ms", "retry 300ms")
		page := openPage(t, e, s.App)

		var streams []*stream
		for i := 0; i < 3; i++ {
			streams = append(streams, page.openStream(s.StreamURL))
		}
		for i, es := range streams {
			o := es.waitFor("events across a max_age end", 15*time.Second, func(o observed) bool {
				return len(o.Opens) >= 2 && len(o.Events) >= 25
			})
			es.close()
			for j, e := range o.Events {
				if j > 0 && e.Data != strconv.Itoa(atoi(t, o.Events[j-1].Data)+1) {
					t.Fatalf("stream %d: event %s after %s (lost or repeated): %s", i, e.Data, o.Events[j-1].Data, o)
				}
				if e.ID != e.Data {
					t.Fatalf("stream %d: event %s has lastEventId %q", i, e.Data, e.ID)
				}
			}
			if len(o.Errors) == 0 || o.Errors[0].State != connecting {
				t.Errorf("stream %d: want the end seen as an error while reconnecting: %s", i, o)
			}
		}
		// The streams max_age ended are finished requests: their resource
		// timing entries tell the protocol.
		var entries []timing
		page.eval(`timings(`+jsString(s.StreamURL)+`)`, &entries)
		if len(entries) == 0 {
			t.Fatalf("no resource timing entry for the ended streams")
		}
		for _, en := range entries {
			if en.Protocol != "http/1.1" {
				t.Errorf("stream served over %q, want http/1.1", en.Protocol)
			}
		}
		if n := len(up.requests()); n != 1 {
			t.Errorf("upstream got %d requests for three shared EventSources and their reconnects, want 1", n)
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("event data %q is not a number", s)
	}
	return n
}
