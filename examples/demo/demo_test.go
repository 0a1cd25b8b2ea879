package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/sse-proxy/caddy-sse-proxy/examples/legacy"
)

// TestDemo runs the demo on a free port and uses it the way the page does,
// over HTTP/2.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy and waits for a heartbeat")
	}
	// Caddy writes its instance ID to its data directory.
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{
			Listen:     net.JoinHostPort("localhost", port),
			StorageDir: t.TempDir(),
			LogLevel:   "ERROR",
			// One event, then silence: the next thing on the stream is a heartbeat.
			Upstream: legacy.Options{Burst: 1, Pause: time.Hour},
			Ready:    func(url string) { ready <- url },
		})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatal("demo not ready after 90 s")
	}
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		Jar: jar,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		},
	}
	defer client.CloseIdleConnections()

	t.Run("page", func(t *testing.T) {
		resp, body := do(t, client, http.MethodGet, base+"/", "")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<title>sse_proxy demo</title>") {
			t.Fatalf("GET /: %s, body starts %.80q", resp.Status, body)
		}
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("GET /: protocol %s, want HTTP/2.0", resp.Proto)
		}
		if _, body := do(t, client, http.MethodGet, base+"/status", ""); !strings.Contains(body, `"HTTP/2.0"`) {
			t.Errorf("GET /status: %s", body)
		}
	})

	// What the page opens first: the public stream, no cookie needed.
	t.Run("no cookie: the public stream", func(t *testing.T) {
		ctx, stopStream := context.WithTimeout(context.Background(), 30*time.Second)
		defer stopStream()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/public", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("GET /events/public: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data:") {
				return
			}
		}
		t.Fatalf("GET /events/public: no event (%v)", sc.Err())
	})

	t.Run("no cookie: 401", func(t *testing.T) {
		resp, _ := do(t, client, http.MethodGet, base+"/events", "text/event-stream")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /events without cookie: %s, want 401", resp.Status)
		}
	})

	t.Run("cookie: events and heartbeats", func(t *testing.T) {
		if resp, _ := do(t, client, http.MethodPost, base+"/login", ""); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /login: %s", resp.Status)
		}
		if _, body := do(t, client, http.MethodGet, base+"/status", ""); !strings.Contains(body, `"session": true`) {
			t.Errorf("GET /status after login: %s", body)
		}

		ctx, stopStream := context.WithTimeout(context.Background(), 30*time.Second)
		defer stopStream()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", "41")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("GET /events with cookie: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("protocol %s, want HTTP/2.0", resp.Proto)
		}
		// The backend sends HTTP/1.1 connection headers; none may reach an
		// HTTP/2 client (browsers and curl reject the response).
		for _, h := range []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection"} {
			if v := resp.Header.Values(h); len(v) > 0 {
				t.Errorf("response has %s: %q", h, v)
			}
		}

		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var sawEvent, sawHeartbeat bool
		start := time.Now()
		for !sawHeartbeat {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				switch {
				case line == "id: 42":
					sawEvent = true
				case strings.HasPrefix(line, "id:"):
					t.Errorf("first id %q, want 42 (Last-Event-ID 41 + 1)", line)
				case strings.HasPrefix(line, ":") && sawEvent:
					sawHeartbeat = true
					t.Logf("heartbeat %q after %v", line, time.Since(start).Round(time.Millisecond))
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("after 10 s: event seen %v, heartbeat seen %v (heartbeat interval is 5 s)", sawEvent, sawHeartbeat)
			}
		}
	})

	// Caddy also serves HTTP/3, where every connection header is fatal: the
	// quic-go client rejects responses carrying Connection or Keep-Alive.
	t.Run("cookie: events over HTTP/3", func(t *testing.T) {
		h3 := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer h3.Close()
		ctx, stopStream := context.WithTimeout(context.Background(), 10*time.Second)
		defer stopStream()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
		u, _ := url.Parse(base)
		for _, c := range jar.Cookies(u) {
			req.AddCookie(c)
		}
		resp, err := (&http.Client{Transport: h3}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/3.0" {
			t.Fatalf("%s %s", resp.Proto, resp.Status)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "id: ") {
				return
			}
		}
		t.Fatalf("stream ended without an event: %v", sc.Err())
	})

	t.Run("logged out: 401", func(t *testing.T) {
		if resp, _ := do(t, client, http.MethodPost, base+"/logout", ""); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /logout: %s", resp.Status)
		}
		if resp, _ := do(t, client, http.MethodGet, base+"/events", "text/event-stream"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /events after logout: %s, want 401", resp.Status)
		}
	})

	// Ctrl-C with a stream open must not hang.
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	do(t, client, http.MethodPost, base+"/login", "")
	req, _ := http.NewRequestWithContext(streamCtx, http.MethodGet, base+"/events", nil)
	if resp, err := client.Do(req); err == nil {
		defer resp.Body.Close()
	}
	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("run still running 20 s after cancel")
	}
}

// do sends a request and reads the whole response (so never for a stream
// that succeeds).
func do(t *testing.T, c *http.Client, method, url, accept string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(body)
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
