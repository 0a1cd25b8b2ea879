package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// This file holds the clients of the legacy-backend tests (backends_test.go)
// and the checks they share.

// streamEvent is one event a client dispatched, and when.
type streamEvent struct {
	Type, Data, ID string
	At             time.Time
}

// sseClient is one client of a backend's stream through Caddy.
type sseClient interface {
	// Name says which client this is, for messages.
	Name() string
	// Seen returns the events dispatched so far, and what went wrong for
	// the client: error events, an end of the stream.
	Seen(t *testing.T) (events []streamEvent, failures []string)
	// Leave closes the stream, as a user closing the page.
	Leave(t *testing.T)
}

// h2Client is Go's HTTP/2 client reading the stream with a session cookie.
type h2Client struct {
	resp   *http.Response
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has stopped

	mu         sync.Mutex // guards the fields below; not held across I/O
	events     []streamEvent
	heartbeats []time.Time
	err        error // how the body ended, nil while open
}

// openH2Client opens the stream over HTTP/2 and reads it in the
// background. Events are parsed with testcaddy.ParseEvents each time bytes
// arrive, so that each gets the time of the read that completed it.
func openH2Client(t *testing.T, b *legacyBackend) *h2Client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.StreamURL, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.AddCookie(&http.Cookie{Name: "session", Value: b.token})
	resp, err := testcaddy.Client(t, testcaddy.H2).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", b.StreamURL, err)
	}
	c := &h2Client{resp: resp, cancel: cancel, done: make(chan struct{})}
	t.Cleanup(c.close)
	go c.read()

	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Fatalf("GET %s: %s over %s, want 200 over HTTP/2.0", b.StreamURL, resp.Status, resp.Proto)
	}
	for _, k := range connectionSpecific {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("the HTTP/2 response has the connection-specific %s: %q", k, v)
		}
	}
	if len(resp.TransferEncoding) > 0 {
		t.Errorf("the HTTP/2 response has Transfer-Encoding %q", resp.TransferEncoding)
	}
	return c
}

func (c *h2Client) read() {
	defer close(c.done)
	var buf []byte
	chunk := make([]byte, 32<<10)
	for {
		n, err := c.resp.Body.Read(chunk)
		now := time.Now()
		buf = append(buf, chunk[:n]...)
		events, comments, _ := testcaddy.ParseEvents(buf)
		c.mu.Lock()
		for _, e := range events[len(c.events):] {
			c.events = append(c.events, streamEvent{Type: e.Type, Data: e.Data, ID: e.ID, At: now})
		}
		for range comments[len(c.heartbeats):] {
			c.heartbeats = append(c.heartbeats, now)
		}
		if err != nil {
			c.err = err
		}
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *h2Client) close() {
	c.cancel()
	c.resp.Body.Close()
	<-c.done
}

func (c *h2Client) Name() string { return "Go HTTP/2 client" }

func (c *h2Client) Seen(*testing.T) ([]streamEvent, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var failures []string
	if c.err != nil {
		failures = append(failures, fmt.Sprintf("the stream ended: %v", c.err))
	}
	return append([]streamEvent(nil), c.events...), failures
}

func (c *h2Client) Leave(*testing.T) { c.close() }

// heartbeatsBetween counts the heartbeats that arrived after from and
// before to.
func (c *h2Client) heartbeatsBetween(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, at := range c.heartbeats {
		if at.After(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// browserClient is an EventSource in a tab of one browser engine.
type browserClient struct {
	name   string
	es     *stream
	origin float64 // the page's performance.timeOrigin, in Unix ms
}

// openBrowserClient opens page.html of b's site in a new tab of engine e,
// sets the session cookie from the page (the site is the backend's own:
// it has no login route), and opens an EventSource there on b's stream
// that records hello and tick events.
func openBrowserClient(t *testing.T, e *engine, b *legacyBackend) sseClient {
	t.Helper()
	page := newTab(t, e)
	page.navigate(b.Origin + "/page.html")
	page.eval(fmt.Sprintf("document.cookie = %s", jsString("session="+b.token+"; Path=/; Secure; SameSite=None")), nil)
	c := &browserClient{name: e.name}
	page.eval("performance.timeOrigin", &c.origin)
	c.es = page.openStream(b.StreamURL, "hello", "tick")
	return c
}

func (c *browserClient) Name() string { return c.name }

func (c *browserClient) Seen(*testing.T) ([]streamEvent, []string) {
	o := c.es.observed()
	events := make([]streamEvent, len(o.Events))
	for i, e := range o.Events {
		at := time.UnixMicro(int64((c.origin + e.At) * 1000))
		events[i] = streamEvent{Type: e.Type, Data: e.Data, ID: e.ID, At: at}
	}
	var failures []string
	for _, e := range o.Errors {
		failures = append(failures, fmt.Sprintf("an error event (readyState %d after it)", e.State))
	}
	if len(o.Opens) > 1 {
		failures = append(failures, fmt.Sprintf("the EventSource opened %d times", len(o.Opens)))
	}
	return events, failures
}

func (c *browserClient) Leave(*testing.T) { c.es.close() }

// availableEngines returns the engines the backend tests can read with.
// A missing engine fails the test in CI (see engine.need); locally the
// backend tests go on with the engines there are, and the Go client.
func availableEngines(t *testing.T) []*engine {
	t.Helper()
	var es []*engine
	for _, e := range engines {
		switch {
		case e.err != nil:
			t.Fatalf("%s: %v", e.name, e.err)
		case e.missing != "" && os.Getenv("CI") == "true" && !strings.HasPrefix(e.missing, "not in E2E_ENGINES"):
			t.Fatalf("browser tests need %s in CI: %s", e.name, e.missing)
		case e.missing != "":
			t.Logf("no %s client: %s", e.name, e.missing)
		default:
			es = append(es, e)
		}
	}
	return es
}

// payload is the JSON data of the backends' events.
type payload struct {
	N             int     `json:"n"`
	Sent          float64 `json:"sent"` // Unix ms
	Authorization string  `json:"authorization"`
}

// ticks returns the tick events of events with their payloads.
func ticks(t *testing.T, events []streamEvent) ([]streamEvent, []payload) {
	t.Helper()
	var evs []streamEvent
	var ps []payload
	for _, e := range events {
		if e.Type != "tick" {
			continue
		}
		var p payload
		if err := json.Unmarshal([]byte(e.Data), &p); err != nil {
			t.Fatalf("tick %q: %v", e.Data, err)
		}
		evs, ps = append(evs, e), append(ps, p)
	}
	return evs, ps
}

// waitTicks waits until c has seen n tick events, and returns them.
func waitTicks(t *testing.T, c sseClient, n int, timeout time.Duration) []streamEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		events, failures := c.Seen(t)
		tk, _ := ticks(t, events)
		if len(tk) >= n {
			return tk
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d tick events within %v, want %d; failures %q; events %+v", c.Name(), len(tk), timeout, n, failures, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitActive waits until the backend serves want streams.
func waitActive(t *testing.T, b *legacyBackend, want int, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := b.active(t)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the backend serves %d streams after %v, want %d", what, got, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkLegacyBackend runs the checks of backends_test.go against b with
// the Go HTTP/2 client and, when there is one, a browser, side by side.
func checkLegacyBackend(t *testing.T, b *legacyBackend) {
	if b.connHeaders != nil {
		t.Logf("asked directly, the backend sends the connection-specific %q", b.connHeaders)
	}
	h2 := openH2Client(t, b)
	clients := []sseClient{h2}
	for _, e := range availableEngines(t) {
		clients = append(clients, openBrowserClient(t, e, b))
	}

	// A burst, a silence, and the next burst starts: the silence has
	// heartbeats.
	for _, c := range clients {
		waitTicks(t, c, burst+1, 10*time.Second+2*pause)
	}
	tk := waitTicks(t, h2, burst+1, 0)
	if n := h2.heartbeatsBetween(tk[burst-1].At, tk[burst].At); n < 2 {
		t.Errorf("%s: %d heartbeats in the backend's silence of %v between events %s and %s, want at least 2 (heartbeat %v)",
			h2.Name(), n, interval+pause, tk[burst-1].ID, tk[burst].ID, heartbeat)
	}

	// Mid-burst, the backend dies and comes back.
	for _, c := range clients {
		waitTicks(t, c, burst+3, 10*time.Second)
	}
	b.proc.restart()
	for _, c := range clients {
		events, _ := c.Seen(t)
		seen, _ := ticks(t, events)
		waitTicks(t, c, len(seen)+3, 20*time.Second)
	}

	for _, c := range clients {
		checkStream(t, c, b.token)
	}

	// Each stream holds one worker of the backend until its client leaves.
	waitActive(t, b, len(clients), 5*time.Second, "with every client reading")
	for _, c := range clients {
		c.Leave(t)
	}
	waitActive(t, b, 0, 10*time.Second+pause, "once every client has left")
}

// checkStream checks what c saw: hello events carrying the session token,
// one for the first response and one after the restart; ticks with
// consecutive ids from 1, each arriving within maxLateness of its sending;
// no failures.
func checkStream(t *testing.T, c sseClient, token string) {
	t.Helper()
	events, failures := c.Seen(t)
	for _, f := range failures {
		t.Errorf("%s: %s", c.Name(), f)
	}

	hellos := 0
	for _, e := range events {
		if e.Type != "hello" {
			continue
		}
		hellos++
		var p payload
		if err := json.Unmarshal([]byte(e.Data), &p); err != nil {
			t.Fatalf("%s: hello %q: %v", c.Name(), e.Data, err)
		}
		if p.Authorization != "Bearer "+token {
			t.Errorf("%s: the backend got Authorization %q, want the session cookie as a bearer token", c.Name(), p.Authorization)
		}
	}
	if hellos < 2 {
		t.Errorf("%s: %d hello events, want one per backend response, two or more with the restart", c.Name(), hellos)
	}

	tk, ps := ticks(t, events)
	for i, p := range ps {
		if want := i + 1; p.N != want || tk[i].ID != fmt.Sprint(want) {
			t.Errorf("%s: tick %d has n %d and id %q, want %d: ids must follow on across the restart", c.Name(), i, p.N, tk[i].ID, want)
			break
		}
	}
	var worst time.Duration
	for i, p := range ps {
		late := tk[i].At.Sub(time.UnixMicro(int64(p.Sent * 1000)))
		worst = max(worst, late)
		if late > maxLateness {
			t.Errorf("%s: event %s arrived %v after the backend wrote it, want within %v", c.Name(), tk[i].ID, late, maxLateness)
		}
	}
	t.Logf("%s: %d events, %d hellos, latest arrival %v after sending", c.Name(), len(tk), hellos, worst)
}
