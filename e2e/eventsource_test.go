package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestCrossOriginEventSourceReceivesEventsOverH2: a credentialed
// EventSource from the app origin gets the events, over HTTP/2.
func TestCrossOriginEventSourceReceivesEventsOverH2(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			send(w, "data: hello\n\n")
			send(w, "data: world\n\n")
			// The response ends here: only a finished request gets a
			// resource timing entry. (With reconnect on, the proxy would keep
			// the client's stream open and ask the upstream again.)
		})
		s := startSites(t, up, "reconnect off")
		page := openPage(t, e, s.App)

		es := page.openStream(s.StreamURL)
		o := es.waitFor("two events", 10*time.Second, func(o observed) bool { return len(o.Events) >= 2 })
		if o.Events[0].Data != "hello" || o.Events[1].Data != "world" {
			t.Errorf("events %s, want data hello then world", o)
		}
		if len(o.Opens) == 0 {
			t.Errorf("no open event: %s", o)
		}

		entries := finishedTimings(t, page, s.StreamURL)
		es.close()
		for _, en := range entries {
			if want := nextHopProtocol[e.name]; en.Protocol != want {
				t.Errorf("stream %s: nextHopProtocol %q, want %q", en.Name, en.Protocol, want)
			}
		}
		// What Caddy saw, for every engine: the page's requests to the
		// stream's origin are HTTP/2.
		var proto string
		page.eval(`fetch(`+jsString(s.Stream+"/proto")+`).then((r) => r.text())`, &proto)
		if proto != "HTTP/2.0" {
			t.Errorf("Caddy served the page's request to the stream origin over %q, want HTTP/2.0", proto)
		}
	})
}

// nextHopProtocol is what each engine's resource timing reports for an
// HTTP/2 stream. (WebKitGTK, with libsoup 3, reports it too.)
var nextHopProtocol = map[string]string{"chromium": "h2", "firefox": "h2", "webkit": "h2"}

// timing is a resource timing entry of the test page.
type timing struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Body     int64  `json:"body"` // decodedBodySize
}

// finishedTimings waits for the resource timing entries of url, which a
// request gets once it has finished.
func finishedTimings(t *testing.T, page *tab, url string) []timing {
	t.Helper()
	var entries []timing
	deadline := time.Now().Add(10 * time.Second)
	for len(entries) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		page.eval(`timings(`+jsString(url)+`)`, &entries)
	}
	if len(entries) == 0 {
		t.Fatalf("no resource timing entry for %s", url)
	}
	return entries
}

// TestHeartbeatsDuringSilenceDispatchNothingAndSplitEventArrivesWhole: while
// the upstream is silent at an event boundary, heartbeats reach the browser
// and dispatch no event; an event the upstream writes in two halves around
// a silence arrives whole, with no heartbeat spliced into it.
func TestHeartbeatsDuringSilenceDispatchNothingAndSplitEventArrivesWhole(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		const quiet = time.Second
		writes := []string{"data: before\n\n", "data: first half, ", "second half\n\n", "data: after\n\n"}
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n > 0 {
				w.WriteHeader(http.StatusNoContent) // no second stream
				return
			}
			startHeaders(w)
			for i, s := range writes {
				if i == 1 || i == 2 {
					select {
					case <-time.After(quiet):
					case <-r.Context().Done():
						return
					}
				}
				send(w, s)
			}
		})
		s := startSites(t, up, "heartbeat 200ms")
		page := openPage(t, e, s.App)

		es := page.openStream(s.StreamURL)
		o := es.waitFor("three events", 10*time.Second, func(o observed) bool { return len(o.Events) >= 3 })
		want := []string{"before", "first half, second half", "after"}
		if len(o.Events) != len(want) {
			t.Fatalf("events %s, want data %q", o, want)
		}
		for i, e := range o.Events {
			if e.Type != "message" || e.Data != want[i] {
				t.Errorf("event %d: %s %q, want message %q", i, e.Type, e.Data, want[i])
			}
		}
		if len(o.Opens) != 1 {
			t.Errorf("opened %d times, want once: %s", len(o.Opens), o)
		}

		// The browser got the upstream's bytes plus heartbeat lines (":\n",
		// 2 bytes each): some 4 of them in the silence of 1 s at 200 ms.
		var sent int64
		for _, w := range writes {
			sent += int64(len(w))
		}
		body := finishedTimings(t, page, s.StreamURL)[0].Body
		extra := body - sent
		if e.name == "webkit" {
			// WebKit reports no body size for an EventSource's request.
			if body != 0 {
				t.Errorf("WebKit reports decodedBodySize %d for the stream, want 0 (update the README if WebKit now reports it)", body)
			}
		} else if extra%2 != 0 || extra/2 < 2 {
			t.Errorf("the browser received %d body bytes; the upstream sent %d: want at least 2 heartbeats of 2 bytes on top", body, sent)
		}
	})
}

// TestSessionCookieBecomesUpstreamBearerToken: a cookie of the stream's
// origin reaches the upstream as "Authorization: Bearer <cookie>"; without
// it the page gets an error and the upstream is never contacted.
func TestSessionCookieBecomesUpstreamBearerToken(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			send(w, "data: "+r.Header.Get("Authorization")+"\n\n")
			<-r.Context().Done()
		})
		s := startSites(t, up, `auth_header Authorization "Bearer {cookie.session}"`)
		page := openPage(t, e, s.App)

		anon := page.openStream(s.StreamURL)
		o := anon.waitFor("an error without the cookie", 10*time.Second, func(o observed) bool { return len(o.Errors) > 0 })
		// The state at the error is what says the EventSource gave up for
		// good. Read later, WebKitGTK 2.50 once reported CONNECTING for an
		// EventSource whose error said CLOSED (one CI run of many, beside
		// the cluster tests); no open, event or upstream request followed.
		if len(o.Events) != 0 || len(o.Opens) != 0 || o.Errors[0].State != closed {
			t.Errorf("without the cookie: %s; want an error in state CLOSED, no open, no events", o)
		}
		if n := len(up.requests()); n != 0 {
			t.Errorf("without the cookie the upstream got %d requests, want none", n)
		}

		token := "e2e-" + rand.Text()
		// The stream's origin sets the cookie on a visit; back on the app
		// page, the EventSource sends it.
		page.navigate(s.Stream + "/login?session=" + token)
		page.navigate(s.App + "/page.html")
		authed := page.openStream(s.StreamURL)
		o = authed.waitFor("an event with the cookie", 10*time.Second, func(o observed) bool { return len(o.Events) > 0 })
		if got, want := o.Events[0].Data, "Bearer "+token; got != want {
			t.Errorf("the upstream saw Authorization %q, want %q", got, want)
		}
		if n := len(up.requests()); n != 1 {
			t.Errorf("the upstream got %d requests, want 1", n)
		}
	})
}

// TestTwentyStreamsInOnePageAllReceiveEvents: HTTP/1.1 would give a page six
// connections per origin, and with endless streams the seventh would never
// open; over HTTP/2 twenty EventSources share one connection.
func TestTwentyStreamsInOnePageAllReceiveEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		const streams = 20
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			send(w, fmt.Sprintf("data: stream %s\n\n", r.URL.Query().Get("n")))
			<-r.Context().Done()
		})
		s := startSites(t, up)
		page := openPage(t, e, s.App)

		var list []*stream
		for i := range streams {
			list = append(list, page.openStream(fmt.Sprintf("%s?n=%d", s.StreamURL, i)))
		}
		deadline := time.Now().Add(15 * time.Second)
		for i, es := range list {
			o := es.waitFor(fmt.Sprintf("stream %d of %d", i+1, streams), time.Until(deadline), func(o observed) bool { return len(o.Events) > 0 })
			if want := fmt.Sprintf("stream %d", i); o.Events[0].Data != want {
				t.Errorf("stream %d got %q, want %q", i, o.Events[0].Data, want)
			}
		}
	})
}

// TestNamedMultiLineAndIdentifiedEventsReachThePage: "event:" picks the
// listener, "data:" lines are joined with "\n", and "id:" sets
// lastEventId, exactly as the upstream wrote them.
func TestNamedMultiLineAndIdentifiedEventsReachThePage(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			send(w, "event: join\nid: 7\ndata: alice\n\n")
			send(w, "data: line one\ndata: line two\n")
			send(w, "data: line three\nid: 8\n\n")
			<-r.Context().Done()
		})
		s := startSites(t, up)
		page := openPage(t, e, s.App)

		es := page.openStream(s.StreamURL, "join")
		o := es.waitFor("two events", 10*time.Second, func(o observed) bool { return len(o.Events) >= 2 })
		want := []event{
			{Type: "join", Data: "alice", ID: "7"},
			{Type: "message", Data: "line one\nline two\nline three", ID: "8"},
		}
		if len(o.Events) != len(want) {
			t.Fatalf("page saw %s, want %d events", o, len(want))
		}
		for i, e := range o.Events {
			if e.Type != want[i].Type || e.Data != want[i].Data || e.ID != want[i].ID {
				t.Errorf("event %d: type %q data %q lastEventId %q; want type %q data %q lastEventId %q",
					i, e.Type, e.Data, e.ID, want[i].Type, want[i].Data, want[i].ID)
			}
		}
	})
}

// TestBrowserReconnectsAfterStreamEndWithLastEventIDAfterRetryDelay: when the
// upstream ends its response, the browser reconnects by itself after the
// configured retry delay (not its own default of 3 s) and sends
// Last-Event-ID, which reaches the upstream.
func TestBrowserReconnectsAfterStreamEndWithLastEventIDAfterRetryDelay(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			if n == 0 {
				send(w, "id: 41\ndata: first\n\n")
				return // the stream ends
			}
			send(w, "id: 42\ndata: second\n\n")
			<-r.Context().Done()
		})
		// reconnect off: the browser, not the proxy, reconnects here.
		s := startSites(t, up, "retry 1500ms", "reconnect off")
		page := openPage(t, e, s.App)

		es := page.openStream(s.StreamURL)
		o := es.waitFor("an event after the reconnect", 10*time.Second, func(o observed) bool { return len(o.Events) >= 2 })
		if o.Events[0].Data != "first" || o.Events[1].Data != "second" || o.Events[1].ID != "42" {
			t.Errorf("page saw %s; want first, then second with lastEventId 42", o)
		}
		if len(o.Errors) != 1 || o.Errors[0].State != connecting || len(o.Opens) != 2 {
			t.Fatalf("page saw %s; want open, one error while reconnecting (state CONNECTING), open", o)
		}
		reqs := up.requests()
		if len(reqs) != 2 {
			t.Fatalf("upstream got %d requests, want 2", len(reqs))
		}
		if got := reqs[0].Header.Get("Last-Event-ID"); got != "" {
			t.Errorf("first request: Last-Event-ID %q, want none", got)
		}
		if got := reqs[1].Header.Get("Last-Event-ID"); got != "41" {
			t.Errorf("reconnect: Last-Event-ID %q, want 41", got)
		}
		// From the error (the end of the stream) to the next open: the retry
		// delay plus one round trip. The upper bound is below Chrome's default
		// of 3 s, so a lost retry field fails the test.
		delay := time.Duration((o.Opens[1] - o.Errors[0].At) * float64(time.Millisecond))
		t.Logf("reconnected %v after the stream ended", delay)
		if delay < 1200*time.Millisecond || delay > 2800*time.Millisecond {
			t.Errorf("reconnected %v after the stream ended; want about 1.5 s (retry 1500ms)", delay)
		}
	})
}

// TestUpstream204ClosesEventSourceForGood: a 204 from the upstream tells the
// browser to stop: EventSource goes CLOSED and never asks again.
func TestUpstream204ClosesEventSourceForGood(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(http.StatusNoContent)
		})
		// A short retry: a wrongful reconnect would come within the wait.
		s := startSites(t, up, "retry 500ms")
		page := openPage(t, e, s.App)

		es := page.openStream(s.StreamURL)
		es.waitFor("an error", 10*time.Second, func(o observed) bool { return len(o.Errors) > 0 })
		time.Sleep(3 * time.Second)
		o := es.observed()
		if o.State != closed || len(o.Errors) != 1 || len(o.Events) != 0 || len(o.Opens) != 0 {
			t.Errorf("3 s after a 204 the page saw %s; want one error, state CLOSED, nothing else", o)
		}
		if n := len(up.requests()); n != 1 {
			t.Errorf("upstream got %d requests, want 1", n)
		}
	})
}

// TestOriginNotInCORSGetsErrorAndNoMessages: a page on an origin that cors
// does not list gets an error and none of the stream's events, while the
// listed origin, same stream, gets them.
func TestOriginNotInCORSGetsErrorAndNoMessages(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, n int) {
			startHeaders(w)
			send(w, "data: secret\n\n")
			<-r.Context().Done()
		})
		s := startSites(t, up)

		other := openPage(t, e, s.Other)
		es := other.openStream(s.StreamURL)
		es.waitFor("an error", 10*time.Second, func(o observed) bool { return len(o.Errors) > 0 })
		time.Sleep(time.Second) // room for an event that should not come
		if o := es.observed(); len(o.Events) != 0 || len(o.Opens) != 0 {
			t.Errorf("page on %s (not in cors) saw %s; want an error and no events", s.Other, o)
		}

		app := openPage(t, e, s.App)
		o := app.openStream(s.StreamURL).waitFor("the event on the allowed origin", 10*time.Second, func(o observed) bool { return len(o.Events) > 0 })
		if o.Events[0].Data != "secret" {
			t.Errorf("page on %s saw %s, want the event", s.App, o)
		}
	})
}
