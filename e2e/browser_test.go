package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// defaultChromium is where Debian's chromium package puts the browser;
// $E2E_CHROMIUM overrides it.
const defaultChromium = "/usr/bin/chromium"

// browser is the one Chromium of this test binary, started by TestMain so
// that its goroutines predate every test's leak check. Each test opens its
// own tab (newTab).
var browser struct {
	ctx     context.Context // a chromedp context whose browser is running
	missing string          // why there is no browser, when there is none
	err     error           // the browser is there but did not start
	output  *tail           // the browser's stdout and stderr
}

// workDir holds what lives as long as the test binary: the browser profile
// and the demo binary.
var workDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sse-proxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir

	stop := startBrowser()
	defer stop()
	return m.Run()
}

// startBrowser starts Chromium, or records why it could not, and returns
// the function that stops it.
func startBrowser() (stop func()) {
	path := defaultChromium
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		browser.missing = fmt.Sprintf("no Chromium at %s (%v); on Debian: apt-get install chromium", path, err)
		return func() {}
	}
	profile, err := os.MkdirTemp(workDir, "profile-")
	if err != nil {
		browser.err = err
		return func() {}
	}
	browser.output = &tail{max: 16 << 10}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(browser.output),
	}
	for _, f := range []string{
		"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync",
		"ignore-certificate-errors",
		// Every tab runs its timers on time, even when it is not in front.
		"disable-background-timer-throttling", "disable-renderer-backgrounding",
	} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Do starts the browser and binds it to ctx: no timeout here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(60 * time.Second):
		err = errors.New("not started after 60 s")
	}
	if err != nil {
		cancel()
		cancelAlloc()
		browser.err = fmt.Errorf("starting %s: %v\n%s", path, err, browser.output)
		return func() {}
	}
	browser.ctx = ctx
	return func() {
		// A graceful close, then the allocator waits for the process.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		cancelAlloc()
	}
}

// needBrowser skips the test when there is no Chromium, or fails it in CI
// (CI=true) or when the browser is there but broken.
func needBrowser(t *testing.T) {
	t.Helper()
	switch {
	case browser.err != nil:
		t.Fatalf("Chromium: %v", browser.err)
	case browser.missing != "" && os.Getenv("CI") == "true":
		t.Fatalf("browser tests need Chromium in CI: %s", browser.missing)
	case browser.missing != "":
		t.Skipf("skipping browser test: %s", browser.missing)
	}
}

// browserTest starts a browser test: it skips (or fails, see needBrowser)
// without Chromium, and checks for leaked goroutines once the test has
// cleaned up. Call it first.
func browserTest(t *testing.T) {
	t.Helper()
	needBrowser(t)
	testcaddy.LeakCheck(t)
}

// tab is one browser tab of a test.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// newTab opens a tab that closes when the test ends. It lives in a
// browser context of its own (like an incognito window): no cookies, cache
// or connections from earlier tests.
func newTab(t *testing.T) *tab {
	t.Helper()
	needBrowser(t)
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first Do opens the tab and binds it to ctx: no deadline on it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return &tab{t: t, ctx: ctx}
}

// do runs f with a deadline, failing the test on error.
func (tb *tab) do(what string, f func(ctx context.Context) error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// navigate loads url and waits for its load event.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("navigating to "+url, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(url))
	})
}

// eval evaluates a JavaScript expression in the page and decodes its value,
// a JSON-able value, into out (nil to ignore it).
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	tb.do("evaluating "+expr, func(ctx context.Context) error {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
		if err != nil || out == nil {
			return err
		}
		return json.Unmarshal(raw, out)
	})
}

// setCookie sets a Secure, HttpOnly, SameSite=None cookie for origin.
func (tb *tab) setCookie(origin, name, value string) {
	tb.t.Helper()
	yes := true
	tb.do("setting cookie "+name, func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: name, Value: value, URL: origin + "/", Path: "/",
			Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteNone,
		})
		return err
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

// traffic is what the browser's network layer saw of the first request for
// one URL: the body bytes in the chunks they came in, and its end.
type traffic struct {
	mu       sync.Mutex
	url      string
	id       network.RequestID
	chunks   []int64 // decoded body bytes per chunk
	finished bool
	failed   string
}

// watchTraffic records the network events of the first request for url
// from now on.
func (tb *tab) watchTraffic(url string) *traffic {
	tb.t.Helper()
	tr := &traffic{url: url}
	err := chromedp.Listen(tb.ctx, func(ev any) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if tr.id == "" && ev.Request != nil && ev.Request.URL == url {
				tr.id = ev.RequestID
			}
		case *network.EventDataReceived:
			if ev.RequestID == tr.id {
				tr.chunks = append(tr.chunks, ev.DataLength)
			}
		case *network.EventLoadingFinished:
			if ev.RequestID == tr.id {
				tr.finished = true
			}
		case *network.EventLoadingFailed:
			if ev.RequestID == tr.id {
				tr.failed = ev.ErrorText
			}
		}
	})
	if err != nil {
		tb.t.Fatalf("listening to network events: %v", err)
	}
	return tr
}

// waitFinished waits until the request has finished and returns the sizes
// of the body chunks it came in.
func (tr *traffic) waitFinished(t *testing.T, timeout time.Duration) []int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tr.mu.Lock()
		done, failed, chunks := tr.finished, tr.failed, append([]int64(nil), tr.chunks...)
		tr.mu.Unlock()
		switch {
		case failed != "":
			t.Fatalf("request for %s failed: %s", tr.url, failed)
		case done:
			return chunks
		case time.Now().After(deadline):
			t.Fatalf("request for %s not finished after %v; body chunks so far: %v", tr.url, timeout, chunks)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
