package share

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// Hubs without a Caddy: the next handler is a fake upstream that writes SSE
// to the ResponseWriter it gets, and no *caddyhttp.Server is needed
// (PrepareRequest takes a nil one; only reverse_proxy reads it).

// fakeUpstream is a next handler: each request gets a 200 event stream and
// then every event sent on feed, until the request ends or feed is closed.
type fakeUpstream struct {
	feed  chan string
	reqs  atomic.Int32
	ended chan struct{} // a token each time a request ends
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{feed: make(chan string), ended: make(chan struct{}, 100)}
}

func (u *fakeUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	u.reqs.Add(1)
	defer func() { u.ended <- struct{}{} }()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case ev, ok := <-u.feed:
			if !ok {
				return nil
			}
			_, _ = w.Write([]byte(ev))
		}
	}
}

// send has the upstream send the events with these ids.
func (u *fakeUpstream) send(t *testing.T, ids ...int) {
	t.Helper()
	for _, id := range ids {
		select {
		case u.feed <- fmt.Sprintf("id: %d\ndata: %d\n\n", id, id):
		case <-time.After(5 * time.Second):
			t.Fatalf("the upstream request is not running to send %d", id)
		}
	}
}

func testConfig() *Config {
	return &Config{
		Linger:       50 * time.Millisecond,
		Replay:       buffer.ReplayLimits{MaxEvents: 100, MaxBytes: 1 << 20},
		ClientBuffer: 1 << 10,
		MaxEventSize: 1 << 10,
		Reconnect:    &proxy.Reconnect{Initial: time.Millisecond, Max: 10 * time.Millisecond, For: time.Second, Hint: func() []byte { return nil }},
		Logger:       zap.NewNop(),
	}
}

func streamRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/events", nil)
	r.Header.Set("Accept", "text/event-stream")
	return r
}

// recv waits for what s has to take and returns it (copied).
func recv(t *testing.T, s *Sub) (batch string, evicted, closed bool) {
	t.Helper()
	select {
	case <-s.Signal():
	case <-time.After(5 * time.Second):
		t.Fatal("nothing to take within 5s")
	}
	b, evicted, closed := s.Take()
	batch = string(b)
	s.Done(b)
	return batch, evicted, closed
}

// nothing checks that s has nothing to take for a while.
func nothing(t *testing.T, s *Sub) {
	t.Helper()
	select {
	case <-s.Signal():
		b, ev, cl := s.Take()
		t.Fatalf("took %q (evicted %v, closed %v), want nothing", b, ev, cl)
	case <-time.After(30 * time.Millisecond):
	}
}

func registered(key string) *Hub {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[key]
}

func ev(ids ...int) string {
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "id: %d\ndata: %d\n\n", id, id)
	}
	return b.String()
}

// A client that joins starts the hub and its one upstream request; a second
// client joins it; both get every event; when both have left, the hub
// lingers, a client that comes back within the linger rejoins the same
// upstream request, and after the linger the request ends and the hub is
// gone from the registry.
func TestHubJoinLeaveLinger(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "hub-test-linger"
	up := newFakeUpstream()
	cfg := testConfig()
	h1, s1 := Join(key, cfg, streamRequest(), nil, up, nil, "")
	h2, s2 := Join(key, cfg, streamRequest(), nil, up, nil, "")
	if h1 != h2 {
		t.Fatal("the second client started a second hub")
	}
	<-h1.Ready()
	if status, header, stream, ok := h1.Answer(s2); !ok || !stream || status != 200 || header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("answer %d %v stream %v ok %v", status, header, stream, ok)
	}
	up.send(t, 1)
	for _, s := range []*Sub{s1, s2} {
		if got, _, _ := recv(t, s); got != ev(1) {
			t.Errorf("got %q, want event 1", got)
		}
	}
	h1.Leave(s1)
	h1.Leave(s2)
	h3, s3 := Join(key, cfg, streamRequest(), nil, up, nil, "")
	if h3 != h1 {
		t.Fatal("a client within the linger started a new hub")
	}
	up.send(t, 2)
	if got, _, _ := recv(t, s3); got != ev(2) {
		t.Errorf("got %q after rejoining, want event 2", got)
	}
	h3.Leave(s3)
	select {
	case <-up.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request still runs 5s after the last client left")
	}
	if n := up.reqs.Load(); n != 1 {
		t.Errorf("%d upstream requests, want 1", n)
	}
	if registered(key) != nil {
		t.Error("the hub is still in the registry after its linger")
	}
	waitClosed(t, h1)
}

// waitClosed waits for the hub's upstream goroutine to be done.
func waitClosed(t *testing.T, h *Hub) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		h.mu.Lock()
		done := h.state == over
		h.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub is not over 5s after its upstream request ended")
		}
		time.Sleep(time.Millisecond)
	}
}

// A client that resumes with a known id gets the events after it from the
// replay buffer, then the live ones; one with an unknown id joins live.
func TestHubReplay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "hub-test-replay"
	up := newFakeUpstream()
	cfg := testConfig()
	h, s := Join(key, cfg, streamRequest(), nil, up, nil, "")
	defer func() { h.Leave(s); h.close(); <-up.ended }()
	<-h.Ready()
	up.send(t, 1, 2, 3, 4)
	var all string
	for all != ev(1, 2, 3, 4) {
		b, _, _ := recv(t, s)
		all += b
		if len(all) > len(ev(1, 2, 3, 4)) {
			t.Fatalf("got %q", all)
		}
	}
	_, resumed := Join(key, cfg, streamRequest(), nil, up, nil, "2")
	defer h.Leave(resumed)
	_, unknown := Join(key, cfg, streamRequest(), nil, up, nil, "99")
	defer h.Leave(unknown)
	if got, _, _ := recv(t, resumed); got != ev(3, 4) {
		t.Errorf("resumed after 2: got %q, want events 3 and 4", got)
	}
	nothing(t, unknown)
	up.send(t, 5)
	if got, _, _ := recv(t, resumed); got != ev(5) {
		t.Errorf("resumed client: got %q, want event 5", got)
	}
	if got, _, _ := recv(t, unknown); got != ev(5) {
		t.Errorf("client with an unknown id: got %q, want event 5 only", got)
	}
}

// A client that takes nothing while more than client_buffer is queued for
// it is evicted: its connection is cut (OnEvict), its queue dropped, and
// Take says so; the other client is not held up.
func TestHubEvictsASlowClient(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "hub-test-evict"
	up := newFakeUpstream()
	cfg := testConfig()
	cfg.ClientBuffer = 3 * len(ev(10))
	h, slow := Join(key, cfg, streamRequest(), nil, up, nil, "")
	_, fast := Join(key, cfg, streamRequest(), nil, up, nil, "")
	defer func() { h.Leave(slow); h.Leave(fast); h.close(); <-up.ended }()
	cut := make(chan struct{})
	slow.OnEvict(func() { close(cut) })
	<-h.Ready()
	for id := 10; id < 15; id++ {
		up.send(t, id)
		if got, evicted, _ := recv(t, fast); got != ev(id) || evicted {
			t.Fatalf("fast client: got %q (evicted %v), want event %d", got, evicted, id)
		}
	}
	select {
	case <-cut:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow client's connection was not cut")
	}
	if batch, evicted, _ := recv(t, slow); !evicted || batch != "" {
		t.Errorf("slow client: got %q, evicted %v; want nothing and evicted", batch, evicted)
	}
}

// A hub whose upstream never answers keeps its clients' streams open (a
// 200 event stream) while it retries, and gives up after the reconnect
// policy's For: its clients are told (closed), and the hub leaves the
// registry.
func TestHubClosesWhenTheUpstreamGivesUp(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "hub-test-close"
	cfg := testConfig()
	cfg.Reconnect.For = 50 * time.Millisecond
	var calls atomic.Int32
	down := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		calls.Add(1)
		return caddyhttp.Error(http.StatusBadGateway, errors.New("down"))
	})
	h, s := Join(key, cfg, streamRequest(), nil, down, nil, "")
	defer h.Leave(s)
	select {
	case <-h.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("the hub did not give up")
	}
	if status, _, stream, ok := h.Answer(s); !ok || !stream || status != http.StatusOK {
		t.Errorf("answer %d, stream %v, ok %v; want the 200 stream the hub keeps open while it retries", status, stream, ok)
	}
	if _, _, closed := recv(t, s); !closed {
		t.Error("the client was not told the hub is over")
	}
	if calls.Load() < 2 {
		t.Errorf("the upstream was asked %d times, want retries", calls.Load())
	}
	waitClosed(t, h)
	if registered(key) != nil {
		t.Error("a hub that is over is still in the registry")
	}
	// A client that comes to a hub that is over (it joined in between)
	// is told at once.
	late := h.subscribe("")
	if _, _, closed := recv(t, late); !closed {
		t.Error("a client of a hub that is over was not told")
	}
	h.Leave(late)
}

// After a config reload, the hub's next attempt goes through the next
// handler of the client that joined last.
func TestHubReconnectsThroughTheLatestNext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "hub-test-next"
	old, cur := newFakeUpstream(), newFakeUpstream()
	cfg := testConfig()
	h, s1 := Join(key, cfg, streamRequest(), nil, old, nil, "")
	<-h.Ready()
	_, s2 := Join(key, cfg, streamRequest(), nil, cur, nil, "")
	close(old.feed) // the old upstream request ends; the hub reconnects
	cur.send(t, 7)
	if got, _, _ := recv(t, s2); got != ev(7) {
		t.Errorf("got %q, want event 7 through the latest next", got)
	}
	h.Leave(s1)
	h.Leave(s2)
	h.close()
	<-cur.ended
	if n := old.reqs.Load(); n != 1 {
		t.Errorf("the old next got %d requests, want 1", n)
	}
}

// asyncStore is a Store that orders events elsewhere: Append queues the
// event, and a goroutine of the store's delivers it later. It stands for a
// second store, to show that the seam takes one without a change to the
// hub.
type asyncStore struct {
	events  chan buffer.Event
	done    chan struct{}
	deliver func(buffer.Event)
}

func newAsyncStore(deliver func(buffer.Event)) *asyncStore {
	a := &asyncStore{events: make(chan buffer.Event, 16), done: make(chan struct{}), deliver: deliver}
	go func() {
		defer close(a.done)
		for ev := range a.events {
			a.deliver(ev)
		}
	}()
	return a
}

func (a *asyncStore) Append(ev buffer.Event) { a.events <- ev }
func (a *asyncStore) Close()                 { close(a.events); <-a.done }

// A hub whose Store delivers from a goroutine of its own: clients get the
// events in order and a resuming client gets them from the history; after
// close the store's goroutine is gone.
func TestHubWithAStoreThatDeliversLater(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newHub("hub-test-store", testConfig())
	h.store = newAsyncStore(h.deliver)
	s := h.subscribe("")
	var want strings.Builder
	for id := 1; id <= 20; id++ {
		h.publish([]byte(ev(id)), fmt.Sprint(id), true)
		want.WriteString(ev(id))
	}
	var got string
	for len(got) < want.Len() {
		b, _, _ := recv(t, s)
		got += b
	}
	if got != want.String() {
		t.Errorf("got %q, want events 1 to 20 in order", got)
	}
	r := h.subscribe("18")
	if b, _, _ := recv(t, r); b != ev(19, 20) {
		t.Errorf("resumed after 18: got %q", b)
	}
	h.Leave(s)
	h.Leave(r)
	h.close()
}

// drain tells the ends of a client apart once, for either kind of client.
func TestDrain(t *testing.T) {
	errWrite := errors.New("broken pipe")
	for _, tc := range []struct {
		name     string
		takes    []take
		writeErr error
		evicted  bool // the hub evicted the client while it wrote
		want     string
	}{
		{"writes then ends", []take{{batch: "a"}, {batch: "b", closed: true}}, nil, false, "write a,write b,end"},
		{"evicted with a last batch", []take{{batch: "a", evicted: true}}, nil, false, "write a,evict"},
		{"a failed write is a client gone", []take{{batch: "a"}, {batch: "b"}}, errWrite, false, "write a,failed"},
		{"a write cut by eviction is an eviction", []take{{batch: "a"}}, errWrite, true, "write a,evict"},
		{"stops when told", []take{{batch: "a"}, {stop: true}, {batch: "never"}}, nil, false, "write a"},
		{"ends with nothing left", []take{{closed: true}}, nil, false, "end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sub{}
			c := &fakeClient{takes: tc.takes, writeErr: tc.writeErr}
			if tc.evicted {
				c.onWrite = func() { s.evicted = true }
			}
			drain(s, c)
			if got := strings.Join(c.calls, ","); got != tc.want {
				t.Errorf("calls %q, want %q", got, tc.want)
			}
		})
	}
}

type take struct {
	batch                 string
	evicted, closed, stop bool
}

// fakeClient is a client that drain runs against; drain calls it from one
// goroutine, so it needs no lock.
type fakeClient struct {
	takes    []take
	writeErr error
	onWrite  func()
	calls    []string
}

func (c *fakeClient) take() ([]byte, bool, bool, bool) {
	if len(c.takes) == 0 {
		return nil, false, false, true
	}
	tk := c.takes[0]
	c.takes = c.takes[1:]
	var b []byte
	if tk.batch != "" {
		b = []byte(tk.batch)
	}
	return b, tk.evicted, tk.closed, tk.stop
}

func (c *fakeClient) write(b []byte) error {
	c.calls = append(c.calls, "write "+string(b))
	if c.onWrite != nil {
		c.onWrite()
	}
	return c.writeErr
}

func (c *fakeClient) failed() { c.calls = append(c.calls, "failed") }
func (c *fakeClient) evict()  { c.calls = append(c.calls, "evict") }
func (c *fakeClient) end()    { c.calls = append(c.calls, "end") }
