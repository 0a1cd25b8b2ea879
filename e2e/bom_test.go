package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestUpstreamBOMIsSeenByThePageAsWithoutTheProxy: a browser strips one
// byte-order mark from the start of each response it reads, so a second
// one makes the line after it a field the page never sees. Through the
// proxy, with or without its retry field in front, and across the proxy's
// own reconnect, the page dispatches exactly what it would reading each
// upstream response itself.
func TestUpstreamBOMIsSeenByThePageAsWithoutTheProxy(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		for _, retry := range []string{"", "retry 1s"} {
			t.Run(fmt.Sprintf("retry=%v", retry != ""), func(t *testing.T) {
				testBOMs(t, e, retry)
			})
		}
	})
}

// testBOMs runs the BOM cases in engine e, with the retry subdirective
// (or none).
func testBOMs(t *testing.T, e *engine, retry string) {
	const bom = "\ufeff"
	var mu sync.Mutex
	visits := map[string]int{}
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		c := r.URL.Query().Get("case")
		mu.Lock()
		visits[c]++
		n := visits[c]
		mu.Unlock()
		startHeaders(w)
		switch c {
		case "one":
			send(w, bom+"data: one\n\n")
		case "two":
			send(w, bom+bom+"data: hidden\n\ndata: two\n\n")
		case "split":
			for _, p := range []string{"\xef", "\xbb", "\xbf\xef\xbb", "\xbfdata: hidden\n\ndata: split\n\n"} {
				send(w, p)
				time.Sleep(20 * time.Millisecond)
			}
		case "reconnect":
			if n == 1 {
				send(w, bom+"data: before\n\n")
				return // the proxy asks again
			}
			send(w, bom+bom+"data: hidden\n\ndata: after\n\n")
		}
		<-r.Context().Done()
	})
	opts := []string{"heartbeat off", "reconnect 50ms 100ms"}
	if retry != "" {
		opts = append(opts, retry)
	}
	s := startSites(t, up, opts...)
	page := openPage(t, e, s.App)
	want := map[string][]string{
		"one":       {"one"},
		"two":       {"two"},
		"split":     {"split"},
		"reconnect": {"before", "after"},
	}
	streams := map[string]*stream{}
	for c := range want {
		streams[c] = page.openStream(s.Stream + "/events?case=" + c)
	}
	for c, es := range streams {
		es.waitFor(c, 10*time.Second, func(o observed) bool { return len(o.Events) >= len(want[c]) })
	}
	time.Sleep(300 * time.Millisecond) // a hidden event, if dispatched, has arrived by now
	for c, es := range streams {
		o := es.observed()
		var got []string
		for _, ev := range o.Events {
			got = append(got, ev.Data)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[c]) {
			t.Errorf("%s: %s: the page saw %q, want %q (%s)", e.name, c, got, want[c], o)
		}
		if len(o.Errors) != 0 || len(o.Opens) != 1 {
			t.Errorf("%s: %s: the page saw %s; want one open and no error", e.name, c, o)
		}
		es.close()
	}
}
