package share

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// A client's queue holds the hub's own bytes of each event (see
// Sub.queue): these tests check that nobody writes into them, and that a
// drained client keeps none of them.

// recordWriter is a client's response: it keeps a copy of what it is
// written, and may take its time (a client that lags, so that several
// events are joined into one batch).
type recordWriter struct {
	header http.Header
	slow   bool
	mu     sync.Mutex // guards body
	body   bytes.Buffer
}

func (w *recordWriter) Header() http.Header { return w.header }
func (w *recordWriter) WriteHeader(int)     {}
func (w *recordWriter) Flush()              {}

func (w *recordWriter) Write(p []byte) (int, error) {
	if w.slow && rand.N(4) == 0 {
		time.Sleep(time.Duration(rand.N(300)) * time.Microsecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(p)
}

func (w *recordWriter) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.body.Bytes())
}

// wokenClient is a client drained with Wake and TakeOrRest (as a
// connection taken over is), writing through a proxy.Writer.
type wokenClient struct {
	sub  *Sub
	sw   *proxy.Writer
	done chan struct{} // closed when the stream ended
}

func (c *wokenClient) take() ([]byte, bool, bool, bool) { return c.sub.TakeOrRest() }
func (c *wokenClient) write(b []byte) error {
	_, err := c.sw.Write(b)
	return err
}
func (c *wokenClient) failed() { close(c.done) }
func (c *wokenClient) evict()  { close(c.done) }
func (c *wokenClient) end()    { close(c.done) }

// shareConfig is a config under which no client in these tests is evicted.
func shareConfig() *Config {
	return &Config{
		Linger:       time.Second,
		Replay:       buffer.ReplayLimits{MaxEvents: 1 << 20, MaxBytes: 1 << 30},
		ClientBuffer: 64 << 20,
		MaxEventSize: 1 << 20,
		Logger:       zap.NewNop(),
	}
}

// distinct is event i: its id, and data of a length and content of its
// own, so that bytes of one written over another's show.
func distinct(i int) []byte {
	n := 1 + (i*37)%700
	return []byte(fmt.Sprintf("id: %d\ndata: %s\n\n", i, strings.Repeat(string(rune('a'+i%26)), n)))
}

// Many clients of one hub, some writing each event as it comes (a batch
// that is the event's own bytes), some lagging (several joined into the
// drainer's spare buffer), drained by their handler (Take) or a woken
// goroutine (TakeOrRest), all through a proxy.Writer: every client gets
// every event's exact bytes, and so does a client that resumes afterwards
// from the hub's history.
func TestSharedEventBytesStayExact(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	shareExactly(t, "queue-share-exact", 64<<20, false)
}

// The same with a client_buffer that the lagging clients overflow, so
// that they are evicted (their queue dropped) while their drainer writes
// a batch, and with clients that leave while they drain (their handler
// returns, or their connection goes while a woken drainer writes): what
// each got is a prefix of the events, byte-exact, and the history is
// intact.
func TestSharedEventBytesStayExactThroughEvictionsAndLeaves(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	shareExactly(t, "queue-share-evict", 96<<10, true)
}

// shareExactly runs 16 clients of a new hub while 3000 events are
// published, then checks their bytes, a resuming client's and the
// history's. With cut, clients may be evicted (limit is small) and some
// leave early; each must then have a prefix of the events.
func shareExactly(t *testing.T, key string, limit int, cut bool) {
	const events, clients = 3000, 16
	cfg := shareConfig()
	cfg.ClientBuffer = limit
	h := newHub(key, cfg)
	defer h.cancel()

	type result struct {
		w    *recordWriter
		name string
	}
	var results []result
	var wg sync.WaitGroup
	for i := range clients {
		w := &recordWriter{header: http.Header{}, slow: i%2 == 1}
		sw := proxy.NewWriter(w, &proxy.Options{}, "", func() {})
		s := h.subscribe("")
		if i%4 < 2 {
			results = append(results, result{w, fmt.Sprintf("kept client %d (slow %v)", i, w.slow)})
			ctx, cancel := context.WithCancel(context.Background())
			if cut && i%8 == 0 {
				time.AfterFunc(time.Duration(20+i)*time.Millisecond, cancel) // leaves midway
			}
			k := &keptClient{ctx: ctx, sub: s, sw: sw, stream: true, hint: func() []byte { return nil }, grace: time.Second}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel()
				defer h.Leave(s)
				defer func() {
					if p := recover(); p != nil && p != http.ErrAbortHandler {
						panic(p)
					} // an eviction aborts the handler
				}()
				drain(s, k)
			}()
			continue
		}
		results = append(results, result{w, fmt.Sprintf("woken client %d (slow %v)", i, w.slow)})
		c := &wokenClient{sub: s, sw: sw, done: make(chan struct{})}
		left := make(chan struct{})
		if cut && i%8 == 2 {
			// Leaves midway, as a connection that went away does,
			// whether or not its drainer is writing.
			time.AfterFunc(time.Duration(20+i)*time.Millisecond, func() {
				h.Leave(s)
				close(left)
			})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.done:
			case <-left:
			}
			h.Leave(s)
		}()
		s.Wake(func() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				drain(s, c)
			}()
		})
	}

	var all bytes.Buffer
	for i := 1; i <= events; i++ {
		ev := distinct(i)
		all.Write(ev)
		h.publish(ev, fmt.Sprint(i), true)
		if i%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}

	// A client that resumes after the first event, once the others
	// joined batches over and over from the same events.
	time.Sleep(50 * time.Millisecond)
	resumed := h.subscribe("1")
	want := bytes.TrimPrefix(all.Bytes(), distinct(1))
	var got bytes.Buffer
	for got.Len() < len(want) {
		select {
		case <-resumed.Signal():
		case <-time.After(5 * time.Second):
			t.Fatalf("the resumed client has %d of %d bytes, and nothing to take", got.Len(), len(want))
		}
		b, _, _ := resumed.Take()
		got.Write(b)
		resumed.Done(b)
	}
	h.Leave(resumed)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("the resumed client got %d bytes, not the %d bytes of events 2 to %d as published", got.Len(), len(want), events)
	}

	h.close()
	wg.Wait()
	whole := 0
	for _, r := range results {
		b := r.w.bytes()
		if bytes.Equal(b, all.Bytes()) {
			whole++
			continue
		}
		if cut && bytes.HasPrefix(all.Bytes(), b) {
			continue
		}
		i := 0
		for i < len(b) && i < all.Len() && b[i] == all.Bytes()[i] {
			i++
		}
		t.Errorf("%s: got %d bytes, want %d; they differ from byte %d", r.name, len(b), all.Len(), i)
	}
	t.Logf("%d of %d clients got the whole stream", whole, clients)
	evs, ok := h.history.After("1", time.Now())
	if !ok || len(evs) != events-1 {
		t.Fatalf("the history holds %d events after 1 (%v), want %d", len(evs), ok, events-1)
	}
	for i, e := range evs {
		if !bytes.Equal(e.Data, distinct(i+2)) {
			t.Fatalf("the history's event %d is %q, not as published", i+2, e.Data)
		}
	}
}

// A final answer's body comes in the upstream's read buffer, which the
// upstream reuses for its next read: what the clients get is the body as
// it came, not what the buffer holds later.
func TestRelayedBodyIsNotTheUpstreamsBuffer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := newHub("queue-share-relay", shareConfig())
	defer h.cancel()
	s := h.subscribe("")
	buf := make([]byte, 15)
	var want bytes.Buffer
	for i := range 20 {
		copy(buf, fmt.Sprintf("line %9d\n", i))
		want.Write(buf)
		h.relayBody(buf) // queued, not taken: the client lags
	}
	<-s.Signal()
	b, evicted, closed := s.Take()
	if evicted || closed {
		t.Fatalf("evicted %v, closed %v", evicted, closed)
	}
	if !bytes.Equal(b, want.Bytes()) {
		t.Errorf("the client got %q, want %q", b, want.Bytes())
	}
	s.Done(b)
	h.Leave(s)
}
