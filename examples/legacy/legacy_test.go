package legacy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/examples/legacy"
)

const token = "s3cret"

// event is one parsed SSE event.
type event struct {
	id, name, data string
	at             time.Time // when the blank line ending it was read
}

// readEvents parses events from an SSE body into a channel that is closed
// when the body ends.
func readEvents(t *testing.T, resp *http.Response) <-chan event {
	t.Helper()
	ch := make(chan event, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "":
				if line == "" {
					ev.at = time.Now()
					ch <- ev
					ev = event{}
				}
			case "id":
				ev.id = value
			case "event":
				ev.name = value
			case "data":
				ev.data = value
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan event, within time.Duration) event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return event{}
}

func get(t *testing.T, ctx context.Context, url string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestAuthentication(t *testing.T) {
	srv := httptest.NewServer(legacy.NewHandler(legacy.Options{Token: token}))
	defer srv.Close()

	for name, auth := range map[string]string{
		"missing":      "",
		"wrong token":  "Bearer nope",
		"wrong scheme": "Basic " + token,
		"empty bearer": "Bearer ",
	} {
		t.Run(name, func(t *testing.T) {
			resp := get(t, t.Context(), srv.URL+"/events", map[string]string{"Authorization": auth})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}

	resp := get(t, t.Context(), srv.URL+legacy.HealthPath, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health check without token: status %d, want 200", resp.StatusCode)
	}
}

func TestRouting(t *testing.T) {
	srv := httptest.NewServer(legacy.NewHandler(legacy.Options{Path: "/stream"}))
	defer srv.Close()
	if resp := get(t, t.Context(), srv.URL+"/events", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/events: status %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", resp.StatusCode)
	}

	anyPath := httptest.NewServer(legacy.NewHandler(legacy.Options{Path: "*"}))
	defer anyPath.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp = get(t, ctx, anyPath.URL+"/whatever/path", nil)
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Errorf(`Path "*": status %d, Content-Type %q`, resp.StatusCode, ct)
	}
}

func TestStreamHeadersAndEvents(t *testing.T) {
	fixed := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(legacy.NewHandler(legacy.Options{
		Token:    token,
		Interval: 10 * time.Millisecond,
		Pause:    -1,
		Now:      func() time.Time { return fixed },
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	resp := get(t, ctx, srv.URL+"/events", map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":                "text/event-stream",
		"Cache-Control":               "no-cache",
		"Connection":                  "keep-alive",
		"Keep-Alive":                  "timeout=5",
		"Access-Control-Allow-Origin": "*",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}

	events := readEvents(t, resp)
	for n := 1; n <= 3; n++ {
		ev := next(t, events, 2*time.Second)
		if ev.id != strconv.Itoa(n) || ev.name != "tick" {
			t.Fatalf("event %d: id %q event %q", n, ev.id, ev.name)
		}
		var data struct {
			N    int       `json:"n"`
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
			t.Fatalf("data %q: %v", ev.data, err)
		}
		if data.N != n || !data.Time.Equal(fixed) {
			t.Errorf("data %q", ev.data)
		}
	}
}

func TestLastEventID(t *testing.T) {
	srv := httptest.NewServer(legacy.NewHandler(legacy.Options{Interval: 10 * time.Millisecond}))
	defer srv.Close()

	for lastID, want := range map[string]string{"41": "42", "": "1", "garbage": "1"} {
		ctx, cancel := context.WithCancel(t.Context())
		resp := get(t, ctx, srv.URL+"/events", map[string]string{"Last-Event-ID": lastID})
		if ev := next(t, readEvents(t, resp), 2*time.Second); ev.id != want {
			t.Errorf("Last-Event-ID %q: first id %q, want %q", lastID, ev.id, want)
		}
		cancel()
	}
}

// TestBurstsAndPauses checks the rhythm: Burst events Interval apart, then
// silence for Pause, then the next burst.
func TestBurstsAndPauses(t *testing.T) {
	const (
		interval = 20 * time.Millisecond
		pause    = 300 * time.Millisecond
	)
	srv := httptest.NewServer(legacy.NewHandler(legacy.Options{Interval: interval, Burst: 3, Pause: pause}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events := readEvents(t, get(t, ctx, srv.URL+"/events", nil))
	var at []time.Time
	for range 4 {
		at = append(at, next(t, events, 5*time.Second).at)
	}
	if gap := at[2].Sub(at[1]); gap >= pause {
		t.Errorf("gap inside a burst %v, want about %v", gap, interval)
	}
	if gap := at[3].Sub(at[2]); gap < pause {
		t.Errorf("gap after a burst %v, want at least %v", gap, pause)
	}
}

// TestStreamEndsWithClient checks that the handler returns promptly when the
// client goes away, even in the middle of a pause.
func TestStreamEndsWithClient(t *testing.T) {
	returned := make(chan struct{}, 1)
	h := legacy.NewHandler(legacy.Options{Pause: time.Hour})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	events := readEvents(t, get(t, ctx, srv.URL+"/events", nil))
	next(t, events, 2*time.Second)
	cancel()
	select {
	case <-returned:
	case <-time.After(2 * time.Second):
		t.Fatal("handler still running 2 s after the client left")
	}
}

// TestServe checks that Serve ends open streams and returns when its context
// is cancelled.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- legacy.Serve(ctx, l, legacy.Options{Pause: time.Hour}) }()

	events := readEvents(t, get(t, t.Context(), "http://"+l.Addr().String()+"/events", nil))
	next(t, events, 2*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, ok := <-events; ok {
		t.Error("stream still open after Serve returned")
	}
}
