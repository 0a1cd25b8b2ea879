package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/goleak"
)

// step is what the fake upstream does on one attempt.
type step func(w http.ResponseWriter, r *http.Request) error

// upstream is a fake next handler: attempt i runs steps[i], the last step
// again once they run out. It records each attempt's time and
// Last-Event-ID.
type upstream struct {
	steps []step
	mu    sync.Mutex
	at    []time.Time
	ids   []string
}

func (u *upstream) handler() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		u.mu.Lock()
		i := len(u.at)
		u.at = append(u.at, time.Now())
		u.ids = append(u.ids, r.Header.Get("Last-Event-ID"))
		u.mu.Unlock()
		return u.steps[min(i, len(u.steps)-1)](w, r)
	})
}

func (u *upstream) attempts() ([]time.Time, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Time(nil), u.at...), append([]string(nil), u.ids...)
}

// sse answers 200 text/event-stream with body, then ends cleanly.
func sse(body string) step {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, err := w.Write([]byte(body))
		return err
	}
}

// broken is sse whose response then breaks, as reverse_proxy says it.
func broken(body string) step {
	return func(w http.ResponseWriter, r *http.Request) error {
		_ = sse(body)(w, r)
		panic(http.ErrAbortHandler)
	}
}

// answer answers code with a body of the given type.
func answer(code int, contentType, body string) step {
	return func(w http.ResponseWriter, r *http.Request) error {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(code)
		_, err := w.Write([]byte(body))
		return err
	}
}

var errDial = errors.New("dial tcp: connection refused")

// unreachable fails before any answer, as reverse_proxy does when it cannot
// reach the upstream (Caddy's error handling would answer 502).
func unreachable(http.ResponseWriter, *http.Request) error { return errDial }

// leave runs f, then makes the client leave (its request's context ends).
func leave(cancel context.CancelFunc, f step) step {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := f(w, r)
		cancel()
		return err
	}
}

// served is one client stream served by the reconnect loop. cancel makes
// the client leave (and is the writer's way to cancel the upstream).
type served struct {
	ctx    context.Context
	cancel context.CancelFunc
	w      *Writer
	rec    *recorder
	err    error
	took   time.Duration
}

func newServed(t *testing.T) *served {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &served{ctx: ctx, cancel: cancel, rec: newRecorder()}
	s.w = NewWriter(s.rec, &Options{MaxEventSize: 1 << 10}, "", cancel)
	return s
}

// run runs rc.Serve for a client request (one that asks for an event
// stream when stream is set) over u, with a deadline of its own so that a
// loop that never stops fails the test instead of hanging it.
func (s *served) run(t *testing.T, rc *Reconnect, u *upstream, stream bool) {
	t.Helper()
	up := httptest.NewRequest(http.MethodGet, "/events", nil).WithContext(s.ctx)
	if stream {
		up.Header.Set("Accept", "text/event-stream")
	}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		defer s.w.Close()
		s.err = rc.Serve(s.ctx, s.w, up, nil, u.handler())
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cancel()
		<-done
		t.Fatal("Serve still running after 10s")
	}
	s.took = time.Since(start)
}

func fastReconnect() *Reconnect {
	return &Reconnect{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Hint: func() []byte { return RetryLine(time.Second) }}
}

func TestReconnectResumesWithTheLastEventID(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := newServed(t)
	u := &upstream{steps: []step{
		sse("id: 1\ndata: a\n\n"),             // ends cleanly
		broken("id: 2\ndata: b\n\ndata: hal"), // breaks mid-event
		unreachable,                           // no answer at all
		leave(s.cancel, sse("data: c\n\n")),
	}}
	s.run(t, fastReconnect(), u, true)
	if s.err != nil {
		t.Fatalf("Serve = %v", s.err)
	}
	_, ids := u.attempts()
	if want := []string{"", "1", "2", "2"}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("Last-Event-ID of the attempts %q, want %q", ids, want)
	}
	if got, want := s.rec.body(), "id: 1\ndata: a\n\nid: 2\ndata: b\n\ndata: c\n\n"; got != want {
		t.Errorf("client got %q, want %q (the broken event dropped)", got, want)
	}
	if s.rec.code != http.StatusOK {
		t.Errorf("client status %d", s.rec.code)
	}
}

// The wait between failed attempts doubles from Initial up to Max, each
// jittered down to no less than half of it. Timers never fire early, so
// the lower bounds are exact; the upper bound is loose (a busy machine).
func TestReconnectBackoffDoublesUpToMax(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rc := &Reconnect{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Hint: func() []byte { return nil }}
	const n = 8
	s := newServed(t)
	u := &upstream{steps: make([]step, n)}
	for i := range n - 1 {
		u.steps[i] = unreachable
	}
	u.steps[n-1] = leave(s.cancel, unreachable)
	s.run(t, rc, u, true)
	at, _ := u.attempts()
	if len(at) != n {
		t.Fatalf("%d attempts, want %d", len(at), n)
	}
	delay := rc.Initial
	var total time.Duration
	for i := 1; i < n; i++ {
		gap := at[i].Sub(at[i-1])
		if gap < delay/2 {
			t.Errorf("wait %d: %v, less than half of %v", i, gap, delay)
		}
		total += delay
		delay = min(2*delay, rc.Max)
	}
	// Without the cap at Max the waits would add up to 10ms·(2⁷-1) = 1.27s.
	if took := at[n-1].Sub(at[0]); took > total+500*time.Millisecond {
		t.Errorf("%d waits took %v; at most %v expected (plus scheduling)", n-1, took, total)
	}
}

// The jitter spreads the waits of one delay over [delay/2, delay].
func TestReconnectBackoffIsJittered(t *testing.T) {
	rc := &Reconnect{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	w, _, _ := startStream(t, &Options{}, nil)
	seen := map[time.Duration]bool{}
	for range 200 {
		wait, next := rc.backoff(rc.Initial, w)
		if wait < 5*time.Millisecond || wait > 10*time.Millisecond || next != rc.Max {
			t.Fatalf("backoff = %v, %v; want a wait in [5ms, 10ms] and 10ms next", wait, next)
		}
		seen[wait] = true
	}
	if len(seen) < 10 {
		t.Errorf("200 waits took only %d values: not jittered", len(seen))
	}
}

// An upstream that stays down for For ends the client's stream with the
// hint, and the last attempt falls at For, even when the backoff would wait
// longer.
func TestReconnectGivesUpAfterFor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rc := &Reconnect{Initial: time.Second, Max: time.Second, For: 60 * time.Millisecond, Hint: func() []byte { return RetryLine(time.Second) }}
	u := &upstream{steps: []step{unreachable}}
	s := newServed(t)
	s.run(t, rc, u, true)
	if s.err != nil || !s.w.Ended() {
		t.Fatalf("Serve = %v, ended %v; want nil and the stream ended", s.err, s.w.Ended())
	}
	if s.rec.code != http.StatusOK || s.rec.body() != "retry: 1000\n" {
		t.Errorf("client got %d %q, want 200 and the hint", s.rec.code, s.rec.body())
	}
	at, _ := u.attempts()
	if len(at) != 2 {
		t.Fatalf("%d attempts, want 2 (the first, and the last at For)", len(at))
	}
	if last := at[1].Sub(at[0]); last < rc.For || last > rc.For+300*time.Millisecond {
		t.Errorf("last attempt %v after the first, want For (%v) or a little more, not the backoff's 0.5-1s", last, rc.For)
	}
	if s.took > rc.For+time.Second {
		t.Errorf("gave up after %v", s.took)
	}
}

// Which answers end the loop, and how the client sees them. The first
// answer reaches the client as it is unless it is a stream or a 5xx (or no
// answer) to a client that asked for a stream; on a reconnect, 204 and
// 4xx (any answer below 500 that is not a stream) end the stream cleanly,
// and a 5xx is retried.
func TestReconnectFinalAnswers(t *testing.T) {
	for _, c := range []struct {
		name     string
		stream   bool // the client asked for an event stream
		steps    []step
		attempts int // attempts made; 0: the loop goes on (the test ends it)
		status   int
		body     string
		err      error
		ended    bool
	}{
		{name: "first 404: relayed", stream: true, steps: []step{answer(404, "text/plain", "no")},
			attempts: 1, status: 404, body: "no"},
		{name: "first 204: relayed", stream: true, steps: []step{answer(204, "", "")},
			attempts: 1, status: 204},
		{name: "first 200 JSON: relayed", stream: true, steps: []step{answer(200, "application/json", "{}")},
			attempts: 1, status: 200, body: "{}"},
		{name: "first 503 to a stream client: retried", stream: true, steps: []step{answer(503, "text/plain", "busy"), sse("data: a\n\n")},
			status: 200, body: "data: a\n\n"},
		{name: "first 503 to another client: relayed", steps: []step{answer(503, "text/plain", "busy")},
			attempts: 1, status: 503, body: "busy"},
		{name: "first no answer to another client: its error", steps: []step{unreachable},
			attempts: 1, err: errDial},
		{name: "reconnect 204: final", stream: true, steps: []step{sse("data: a\n\n"), answer(204, "", "")},
			attempts: 2, status: 200, body: "data: a\n\n", ended: true},
		{name: "reconnect 404: final", stream: true, steps: []step{sse("data: a\n\n"), answer(404, "text/plain", "gone")},
			attempts: 2, status: 200, body: "data: a\n\n", ended: true},
		{name: "reconnect 200 JSON: final", stream: true, steps: []step{sse("data: a\n\n"), answer(200, "application/json", "{}")},
			attempts: 2, status: 200, body: "data: a\n\n", ended: true},
		{name: "reconnect 502: retried", stream: true, steps: []step{sse("data: a\n\n"), answer(502, "text/plain", "down"), sse("data: b\n\n")},
			status: 200, body: "data: a\n\ndata: b\n\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			s := newServed(t)
			u := &upstream{steps: c.steps}
			if c.attempts == 0 {
				// The loop goes on: the client leaves after the last step.
				last := len(c.steps) - 1
				u.steps = append(append([]step(nil), c.steps[:last]...), leave(s.cancel, c.steps[last]))
				c.attempts = len(c.steps)
			}
			s.run(t, fastReconnect(), u, c.stream)
			if at, _ := u.attempts(); len(at) != c.attempts {
				t.Errorf("%d attempts, want %d", len(at), c.attempts)
			}
			if !errors.Is(s.err, c.err) {
				t.Errorf("Serve = %v, want %v", s.err, c.err)
			}
			if s.rec.code != c.status || s.rec.body() != c.body {
				t.Errorf("client got %d %q, want %d %q", s.rec.code, s.rec.body(), c.status, c.body)
			}
			if s.w.Ended() != c.ended {
				t.Errorf("ended %v, want %v", s.w.Ended(), c.ended)
			}
		})
	}
}

// A first answer whose body breaks breaks the client's response too: the
// loop passes reverse_proxy's abort on.
func TestReconnectPassesOnTheAbortOfARelayedAnswer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rc := fastReconnect()
	rec := newRecorder()
	w := NewWriter(rec, &Options{}, "", func() {})
	defer w.Close()
	up := httptest.NewRequest(http.MethodGet, "/file", nil)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_ = answer(200, "application/json", "{\"a\":")(w, r)
		panic(http.ErrAbortHandler)
	})
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", v)
		}
	}()
	_ = rc.Serve(context.Background(), w, up, nil, next)
	t.Error("Serve returned")
}

// The client leaving stops the loop at once, also in the middle of a long
// wait.
func TestReconnectStopsWhenTheClientLeaves(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// Waits of 3-6s: long enough to tell, short enough that a loop that
	// misses the client's leaving still returns (at its next attempt).
	rc := &Reconnect{Initial: 6 * time.Second, Max: 6 * time.Second, Hint: func() []byte { return nil }}
	u := &upstream{steps: []step{unreachable}}
	s := newServed(t)
	time.AfterFunc(20*time.Millisecond, s.cancel)
	s.run(t, rc, u, true)
	if s.err != nil {
		t.Errorf("Serve = %v", s.err)
	}
	if s.took > 2*time.Second {
		t.Errorf("Serve returned %v after the client left at 20ms", s.took)
	}
	if at, _ := u.attempts(); len(at) != 1 {
		t.Errorf("%d attempts, want 1", len(at))
	}
}
