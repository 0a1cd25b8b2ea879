package redisstore

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testClient returns a client of its own (not from the usage pool, so
// that two of them compete like two instances) for srv.
func testClient(t testing.TB, addr string, lease time.Duration) *Client {
	t.Helper()
	cfg := Config{Address: addr, Lease: caddy.Duration(lease)}
	cfg.expand()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := newClient(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Destruct() })
	return c
}

// ctxT is a context that ends with the test, or after 20s.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startRedis starts a redis-server for t.
func startRedis(t testing.TB, opts ...redistest.Option) *redistest.Server {
	return redistest.Start(t, opts...)
}

// mustAcquire takes s's lease or fails the test.
func mustAcquire(t testing.TB, s *Stream, owner string) int64 {
	t.Helper()
	tok, won, err := s.Acquire(ctxT(t), owner)
	if err != nil || !won {
		t.Fatalf("Acquire(%s) = %d, %v, %v; want a win", owner, tok, won, err)
	}
	return tok
}

// recorder collects what a Follow delivers.
type recorder struct {
	mu      sync.Mutex
	entries []Entry
	answers []int
	changed chan struct{} // signalled (without blocking) on each delivery
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) deliver(e Entry) {
	r.mu.Lock()
	r.entries = append(r.entries, e)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) answer(status int, _ http.Header) {
	r.mu.Lock()
	r.answers = append(r.answers, status)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.entries...)
}

// waitFor waits until cond holds for the entries delivered, or fails t
// after 10s.
func (r *recorder) waitFor(t testing.TB, what string, cond func([]Entry) bool) []Entry {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if es := r.snapshot(); cond(es) {
			return es
		}
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			es := r.snapshot()
			t.Fatalf("timed out waiting for %s; have %d entries: %v", what, len(es), offsets(es))
		}
	}
}

func offsets(es []Entry) []uint64 {
	o := make([]uint64, len(es))
	for i, e := range es {
		o[i] = e.Offset
	}
	return o
}

// consecutive checks that es are offsets from..from+len-1 of one epoch.
func consecutive(t testing.TB, es []Entry, from uint64) {
	t.Helper()
	for i, e := range es {
		if e.Offset != from+uint64(i) || e.Epoch != es[0].Epoch {
			t.Fatalf("entry %d: epoch %s offset %d; want offset %d of epoch %s (all: %v)", i, e.Epoch, e.Offset, from+uint64(i), es[0].Epoch, offsets(es))
		}
	}
}
