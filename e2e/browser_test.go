package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// tab is one browser tab of a test, in one engine.
type tab struct {
	t      *testing.T
	engine *engine
	d      driver
}

// newTab opens a tab of e that closes when the test ends. It has no
// cookies, cache or connections from earlier tests.
func newTab(t *testing.T, e *engine) *tab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := e.newDriver(ctx)
	if err != nil {
		t.Fatalf("%s: opening a tab: %v", e.name, err)
	}
	t.Cleanup(d.close)
	return &tab{t: t, engine: e, d: d}
}

// do runs f with a deadline, failing the test on error.
func (tb *tab) do(what string, f func(ctx context.Context) error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.engine.name, what, err)
	}
}

// navigate loads url and waits for its load event.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("navigating to "+url, func(ctx context.Context) error {
		return tb.d.navigate(ctx, url)
	})
}

// eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value, a JSON-able value, into out (nil to ignore it).
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	tb.do("evaluating "+expr, func(ctx context.Context) error {
		raw, err := tb.d.eval(ctx, expr)
		if err != nil || out == nil {
			return err
		}
		return json.Unmarshal(raw, out)
	})
}

// click clicks the element selector finds.
func (tb *tab) click(selector string) {
	tb.t.Helper()
	tb.do("clicking "+selector, func(ctx context.Context) error {
		return tb.d.click(ctx, selector)
	})
}

// event is one event an EventSource dispatched to the page.
type event struct {
	Type string  `json:"type"`
	Data string  `json:"data"`
	ID   string  `json:"id"`
	At   float64 `json:"at"` // performance.now(), in ms
}

// streamError is one error event, with the readyState right after it.
type streamError struct {
	State int     `json:"state"`
	At    float64 `json:"at"`
}

// EventSource readyState values.
const (
	connecting = 0
	open       = 1
	closed     = 2
)

// observed is what the page saw of one EventSource.
type observed struct {
	Events []event       `json:"events"`
	Opens  []float64     `json:"opens"`
	Errors []streamError `json:"errors"`
	State  int           `json:"state"`
}

func (o observed) String() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// stream is an EventSource opened in a tab by testdata/page.html.
type stream struct {
	tab *tab
	i   int
	url string
}

// openStream opens a credentialed EventSource on url from the page,
// listening for message events and the named event types.
func (tb *tab) openStream(url string, types ...string) *stream {
	tb.t.Helper()
	args, _ := json.Marshal([]any{url, types})
	var i int
	tb.eval(fmt.Sprintf("openStream(...%s)", args), &i)
	return &stream{tab: tb, i: i, url: url}
}

// observed returns what the page has seen of the stream so far.
func (s *stream) observed() observed {
	s.tab.t.Helper()
	var o observed
	s.tab.eval(fmt.Sprintf("observed(%d)", s.i), &o)
	return o
}

// waitFor polls the page until cond holds for what it observed, and
// returns that; after timeout it fails the test with what it saw.
func (s *stream) waitFor(what string, timeout time.Duration, cond func(observed) bool) observed {
	s.tab.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		o := s.observed()
		if cond(o) {
			return o
		}
		if time.Now().After(deadline) {
			s.tab.t.Fatalf("%s: not seen within %v; the page observed %s", what, timeout, o)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close closes the EventSource.
func (s *stream) close() {
	s.tab.t.Helper()
	s.tab.eval(fmt.Sprintf("closeStream(%d)", s.i), nil)
}

// tail is a writer that keeps the last max bytes written, for error
// messages.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.b))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
