package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// The SSE client libraries pages and servers use instead of EventSource,
// pinned in node/package-lock.json: what the proxy adds to a stream (the
// retry field, heartbeats) must be as invisible to them as it is to
// EventSource.

var clientsBundle struct {
	once sync.Once
	err  error
}

// bundleClients builds the browser libraries' bundle (node/clients.mjs)
// into workDir/lib, which the test pages' origins serve under /lib/. It
// skips the test without node and its packages, or fails it in CI.
func bundleClients(t *testing.T) {
	t.Helper()
	if m := needNode(); m != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("client-library tests need node in CI: %s", m)
		}
		t.Skipf("skipping client-library test: %s", m)
	}
	clientsBundle.once.Do(func() {
		out, err := exec.Command(filepath.Join(nodeDir, "node_modules", ".bin", "esbuild"),
			filepath.Join(nodeDir, "clients.mjs"), "--bundle", "--format=iife", "--log-level=warning",
			"--outfile="+filepath.Join(workDir, "lib", "clients.js")).CombinedOutput()
		if err != nil {
			clientsBundle.err = fmt.Errorf("esbuild: %v\n%s", err, out)
		}
	})
	if clientsBundle.err != nil {
		t.Fatal(clientsBundle.err)
	}
}

// libEvent is what a library handed the page or the Node script.
type libEvent struct {
	Type string `json:"type"`
	Data string `json:"data"`
	ID   string `json:"id"`
	JSON bool   `json:"json"` // the data parsed as JSON (fetch-event-source)
}

// openClientStream opens url with the library function open (a function
// of testdata/clients.html) and its extra arguments.
func (tb *tab) openClientStream(open, url string, args ...any) *stream {
	tb.t.Helper()
	all, _ := json.Marshal(append([]any{url}, args...))
	var i int
	tb.eval(fmt.Sprintf("%s(...%s)", open, all), &i)
	return &stream{tab: tb, i: i, url: url}
}

// events returns what the library handed the page.
func (s *stream) libEvents() []libEvent {
	s.tab.t.Helper()
	var o struct {
		Events []libEvent `json:"events"`
	}
	s.tab.eval(fmt.Sprintf("observed(%d)", s.i), &o)
	return o.Events
}

// jsonEvents is an upstream that streams JSON events with ids, pausing
// longer than the heartbeat interval between them, and a named event, the
// way an LLM answer streams, then ends.
func jsonEvents(quiet time.Duration) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		if n > 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		startHeaders(w)
		for i, ev := range []string{
			"id: 1\ndata: {\"n\":1}\n\n",
			"id: 2\ndata: {\"n\":2}\n\n",
			"event: named\nid: 3\ndata: {\"n\":3}\n\n",
		} {
			if i > 0 {
				select {
				case <-time.After(quiet):
				case <-r.Context().Done():
					return
				}
			}
			send(w, ev)
		}
		<-r.Context().Done()
	}
}

// wantJSONEvents is what a client must see of jsonEvents: the three
// events and nothing else.
var wantJSONEvents = []libEvent{
	{Type: "message", Data: `{"n":1}`, ID: "1", JSON: true},
	{Type: "message", Data: `{"n":2}`, ID: "2", JSON: true},
	{Type: "named", Data: `{"n":3}`, ID: "3", JSON: true},
}

// TestFetchEventSourceGetsOnlyTheUpstreamsEvents: @microsoft/fetch-event-source
// calls onmessage on every empty line it reads, even one that ends no
// field. Through the proxy, with a retry field first and heartbeats in
// the silences, the page's onmessage still gets exactly the upstream's
// events, each with JSON data. (With the retry field and each heartbeat
// followed by an empty line, it got an empty message for each.)
func TestFetchEventSourceGetsOnlyTheUpstreamsEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		bundleClients(t)
		up := newUpstream(t, jsonEvents(time.Second))
		s := startSites(t, up, "heartbeat 200ms", "retry 1500ms", "reconnect off")
		page := newTab(t, e)
		page.navigate(s.App + "/clients.html")

		es := page.openClientStream("openFetchEventSource", s.StreamURL)
		es.waitFor("three events", 15*time.Second, func(o observed) bool { return len(o.Events) >= 3 })
		time.Sleep(500 * time.Millisecond) // room for heartbeats after the last event
		got := es.libEvents()
		es.close()
		if !equalEvents(got, wantJSONEvents) {
			t.Errorf("onmessage got %+v; want exactly %+v", got, wantJSONEvents)
		}
	})
}

// TestEventSourcePolyfillResumesFromLastEventIdQueryAndHeartbeatsKeepItOpen:
// Yaffle's event-source-polyfill sends the last id as a lastEventId query
// parameter when it reconnects, which last_event_id_query turns into the
// upstream's Last-Event-ID; and it gives up on a stream that sends nothing
// for heartbeatTimeout (45 s by default, 2 s here): the proxy's heartbeats
// keep a silent stream open, and none of them reaches the page.
func TestEventSourcePolyfillResumesFromLastEventIdQueryAndHeartbeatsKeepItOpen(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		bundleClients(t)
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			if n == 0 {
				send(w, "id: 41\ndata: first\n\n")
				return // the stream ends: the polyfill reconnects
			}
			send(w, "id: 42\ndata: second\n\n")
			<-r.Context().Done() // then silence, longer than heartbeatTimeout
		})
		s := startSites(t, up, "heartbeat 500ms", "retry 500ms", "reconnect off", "last_event_id_query lastEventId")
		page := newTab(t, e)
		page.navigate(s.App + "/clients.html")

		es := page.openClientStream("openPolyfill", s.StreamURL, 2000)
		es.waitFor("two events", 15*time.Second, func(o observed) bool { return len(o.Events) >= 2 })
		time.Sleep(5 * time.Second) // 2.5 times heartbeatTimeout without an event
		o := es.observed()
		got := es.libEvents()
		es.close()
		want := []libEvent{{Type: "message", Data: "first", ID: "41"}, {Type: "message", Data: "second", ID: "42"}}
		if !equalEvents(got, want) {
			t.Errorf("the page got %+v; want exactly %+v", got, want)
		}
		if len(o.Opens) != 2 {
			t.Errorf("opened %d times, want 2 (the reconnect after the end, none for the silence): %s", len(o.Opens), o)
		}
		reqs := up.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream got %d requests, want 2", len(reqs))
		}
		if got := reqs[1].Header.Get("Last-Event-ID"); got != "41" {
			t.Errorf("reconnect: upstream Last-Event-ID %q, want 41 (from the lastEventId query parameter)", got)
		}
	})
}

// TestNodeEventSourceGetsOnlyTheUpstreamsEvents: the Node `eventsource`
// package, as a server-side consumer uses it, gets the upstream's events
// through the proxy, and reconnects with Last-Event-ID after the retry
// delay the proxy sent.
func TestNodeEventSourceGetsOnlyTheUpstreamsEvents(t *testing.T) {
	if m := needNode(); m != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("client-library tests need node in CI: %s", m)
		}
		t.Skipf("skipping client-library test: %s", m)
	}
	testcaddy.LeakCheck(t)
	quiet := time.Second
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			jsonEvents(quiet)(w, r, 0)
			return
		}
		startHeaders(w)
		send(w, "id: 4\ndata: {\"n\":4}\n\n")
		<-r.Context().Done()
	})
	// No HTTP/3 on the stream's site: Caddy v2.11.9 sets up its HTTP/3
	// server after its TCP listeners serve, and an HTTP/1.1 request (what
	// Node's fetch sends) reads that field unsynchronized: a data race in
	// Caddy (server.go ServeHTTP against serveHTTP3), not in this module.
	s := startSitesWith(t, up, "h1 h2", "heartbeat 200ms", "retry 700ms", "reconnect off", "max_age 3s")

	cert, _ := testcaddy.Cert(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "eventsource-client.mjs", s.StreamURL, "4")
	cmd.Dir = nodeDir
	// Node trusts the tests' self-signed certificate as its own CA.
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+cert)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node eventsource-client.mjs: %v\n%s\n%s", err, out, stderr.String())
	}
	var got []libEvent
	var opens int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var line struct {
			Kind string `json:"kind"`
			libEvent
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("node printed %q: %v", sc.Text(), err)
		}
		switch line.Kind {
		case "open":
			opens++
		case "message":
			line.JSON = json.Valid([]byte(line.Data))
			got = append(got, line.libEvent)
		}
	}
	want := append(append([]libEvent(nil), wantJSONEvents...), libEvent{Type: "message", Data: `{"n":4}`, ID: "4", JSON: true})
	if !equalEvents(got, want) {
		t.Errorf("the eventsource package got %+v; want exactly %+v\n%s", got, want, out)
	}
	if opens != 2 {
		t.Errorf("opened %d times, want 2 (max_age ends the first stream)\n%s", opens, out)
	}
	reqs := up.requests()
	if len(reqs) != 2 || reqs[1].Header.Get("Last-Event-ID") != "3" {
		t.Errorf("upstream requests %+v; want 2, the second with Last-Event-ID 3", reqs)
	}
}

func equalEvents(got, want []libEvent) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
