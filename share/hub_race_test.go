package share

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// numbered is an upstream handler that sends events with ids 1, 2, ...
// as fast as it can, each in a few pieces, until the request ends.
func numbered(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for i := 1; r.Context().Err() == nil; i++ {
		ev := fmt.Sprintf("id: %d\ndata: %d\n\n", i, i)
		cut := rand.N(len(ev))
		_, _ = w.Write([]byte(ev[:cut]))
		_, _ = w.Write([]byte(ev[cut:]))
		if i%50 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// ids parses the ids of the whole events in b.
func ids(t *testing.T, b []byte) []int {
	t.Helper()
	var out []int
	for _, ev := range bytes.Split(bytes.TrimSuffix(b, []byte("\n\n")), []byte("\n\n")) {
		if len(ev) == 0 {
			continue
		}
		line, _, _ := bytes.Cut(ev, []byte("\n"))
		n, err := strconv.Atoi(string(bytes.TrimPrefix(line, []byte("id: "))))
		if err != nil {
			t.Fatalf("not an event of ours: %q", ev)
		}
		out = append(out, n)
	}
	return out
}

// Clients that join, read a little and leave, over and over, each resuming
// with the last id it got while the hub appends as fast as it can: each
// gets every event after its id exactly once, in order (join racing an
// append loses or repeats none).
func TestHubResumingClientsRacingAppendsLoseNothing(t *testing.T) {
	cfg := &Config{
		Linger:       time.Second,
		Replay:       buffer.ReplayLimits{MaxEvents: 1 << 20, MaxBytes: 1 << 30},
		ClientBuffer: 1 << 30,
		MaxEventSize: 1 << 10,
		Reconnect:    &proxy.Reconnect{Initial: time.Millisecond, Max: 10 * time.Millisecond, Hint: func() []byte { return nil }},
		Logger:       zap.NewNop(),
	}
	req := httptest.NewRequest(http.MethodGet, "/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	const key = "race-test"
	var wg sync.WaitGroup
	var first *Hub
	var firstMu sync.Mutex
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := ""
			for round := 0; round < 30; round++ {
				hub, sub := Join(key, cfg, req, nil, caddyhttp.HandlerFunc(numbered), nil, last)
				firstMu.Lock()
				if first == nil {
					first = hub
				} else if first != hub {
					t.Errorf("a second hub started: the first one stopped with clients on it")
				}
				firstMu.Unlock()
				<-hub.Ready()
				want := 0
				if last != "" {
					want, _ = strconv.Atoi(last)
					want++
				}
				got := 0
				for got < 20 {
					<-sub.Signal()
					batch, evicted, closed := sub.Take()
					if evicted || closed {
						t.Errorf("evicted %v, closed %v", evicted, closed)
						hub.Leave(sub)
						return
					}
					for _, id := range ids(t, batch) {
						if want != 0 && id != want {
							t.Errorf("resumed after %q: got id %d, want %d", last, id, want)
							hub.Leave(sub)
							return
						}
						want = id + 1
						got++
						last = strconv.Itoa(id)
					}
					sub.Done(batch)
				}
				hub.Leave(sub)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		first.close()
	}
}

// A first answer that is not a stream and never ends, relayed to clients
// that leave while it comes: once the last has left, the upstream request
// ends (after the linger) and the hub is gone, and no later client joins
// it.
func TestHubOpenNonStreamAnswerEndsWhenItsClientsLeave(t *testing.T) {
	cfg := &Config{
		Linger:       20 * time.Millisecond,
		Replay:       buffer.ReplayLimits{MaxEvents: 10, MaxBytes: 1 << 20},
		ClientBuffer: 1 << 10,
		MaxEventSize: 1 << 10,
		Reconnect:    &proxy.Reconnect{Initial: time.Millisecond, Max: 10 * time.Millisecond, Hint: func() []byte { return nil }},
		Logger:       zap.NewNop(),
	}
	req := httptest.NewRequest(http.MethodGet, "/page", nil)
	req.Header.Set("Accept", "text/event-stream")
	start := make(chan struct{})
	ended := make(chan struct{}, 10)
	var reqs sync.WaitGroup
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		reqs.Add(1)
		defer reqs.Done()
		defer func() { ended <- struct{}{} }()
		<-start
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		for r.Context().Err() == nil {
			_, _ = w.Write([]byte("line\n"))
			time.Sleep(50 * time.Microsecond)
		}
		return nil
	})
	const key = "final-test"
	var wg sync.WaitGroup
	hubs := make([]*Hub, 10)
	subs := make([]*Sub, 10)
	for i := range hubs {
		hubs[i], subs[i] = Join(key, cfg, req, nil, next, nil, "")
	}
	close(start)
	for i := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer hubs[i].Leave(subs[i])
			<-hubs[i].Ready()
			status, header, stream, ok := hubs[i].Answer(subs[i])
			if !ok || stream || status != 200 || header.Get("Content-Type") != "text/plain" {
				t.Errorf("answer %d %v %v %v", status, header, stream, ok)
				return
			}
			for n := 0; n < 5*i; {
				<-subs[i].Signal()
				batch, evicted, closed := subs[i].Take()
				if evicted || closed {
					return // too slow for client_buffer: evicted, fine
				}
				n += bytes.Count(batch, []byte("\n"))
				subs[i].Done(batch)
			}
		}()
	}
	// A client that comes once the answer is known starts anew.
	<-hubs[0].Ready()
	h2, s2 := Join(key, cfg, req, nil, next, nil, "")
	if h2 == hubs[0] {
		t.Errorf("a client joined a non-stream answer already under way")
	}
	h2.Leave(s2)
	wg.Wait()
	for i := 0; i < 2; i++ {
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("upstream request %d still running 5s after its clients left", i)
		}
	}
	reqs.Wait()
	registryMu.Lock()
	_, left := registry[key]
	registryMu.Unlock()
	if left {
		t.Errorf("a hub is still registered")
	}
}
