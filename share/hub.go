package share

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// state of a hub's upstream answer.
type state uint8

const (
	waiting   state = iota // no answer yet
	streaming              // an event stream
	final                  // a non-stream answer, given to every client as is
	over                   // the upstream stream is over
)

// Hub is one shared upstream stream.
type Hub struct {
	// Set when the hub is made, then only read: no lock.
	key    string
	cfg    *Config
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed once the answer is known (markReady)
	// followed is closed once a cluster hub follows its store (follows).
	followed chan struct{}
	store    Store // orders the events between publish and deliver
	// link is the store when the config has a cluster (it is then also
	// store), nil otherwise.
	link *link
	// up and srv make each upstream request of a cluster hub, which may
	// read the upstream several times (whenever it holds the lease); rv
	// keeps the upstream's cookies across them. Set by start, before the
	// hub's goroutine starts; then only read by it.
	up  *http.Request
	srv *caddyhttp.Server
	rv  *proxy.Revisit
	// starter is the subscription whose request the upstream answers: the
	// only one that gets the answer's Set-Cookie (see Answer). Set once,
	// before the hub is in the registry.
	starter *Sub

	// mu guards the fields below it, up to closeOnce: the answer, the
	// history and the set of clients. It is second in the lock order
	// (registryMu → Hub.mu → Sub.mu; a hub's upstream Writer.mu before
	// all, see the package doc) and never held across network I/O: under
	// it events are only queued (Sub.push), never written.
	mu        sync.Mutex
	state     state
	status    int
	header    http.Header
	nonStream bool    // the answer is not an event stream
	broken    bool    // the non-stream answer's body broke before its end
	history   History // recent events, for clients that resume
	// lastID is the id of the newest event delivered (Event.ID).
	lastID string
	// pos is the store's place of the newest event delivered, for a
	// cluster hub (see catchUp); positioned is false until the hub
	// follows the store.
	pos        position
	positioned bool
	subs       map[*Sub]struct{}
	linger     *time.Timer
	// next is the handler each upstream attempt goes through: that of the
	// client that joined last (see Join), so that after a config reload
	// the hub's reconnects go through the newest config's reverse_proxy,
	// whose retries (lb_try_duration) work while the old one's stopped
	// with its context. Read (not called) under mu, once per attempt.
	next caddyhttp.Handler

	closeOnce sync.Once

	// The lists of drainers to start once mu is let go, kept for reuse.
	// Not guarded by mu: each has one owner that never runs twice at once.
	// deliverWakes is deliver's (the Store calls deliver one event at a
	// time), relayWakes is relayBody's (the hub's upstream goroutine).
	deliverWakes []func()
	relayWakes   []func()
}

func newHub(key string, cfg *Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		key: key, cfg: cfg, ctx: ctx, cancel: cancel,
		ready:    make(chan struct{}),
		followed: make(chan struct{}),
		history:  buffer.NewReplay(cfg.Replay),
		subs:     map[*Sub]struct{}{},
	}
	if cfg.Cluster != nil {
		h.link = newLink(h, cfg.Cluster)
		h.store = h.link
	} else {
		h.store = newMemoryStore(h.deliver)
	}
	if cfg.Metrics != nil {
		cfg.Metrics.hubs.Inc()
	}
	return h
}

// start runs the upstream request in the background, each attempt through
// the handler the hub adopted last (see adopt). The request is a copy
// of the first client's, with a context that no client owns and Caddy's
// per-request state made afresh: reverse_proxy writes to the replacer and
// vars of the request it serves.
//
// The first client's Last-Event-ID is not sent: the stream is everyone's,
// and an upstream that resumed from that client's position would send the
// events it missed to every client that joins, most of them up to date.
// Each client's position is its own, in the replay buffer. (The proxy's
// Shaper has already moved a last_event_id_query parameter into the header
// and off the URL.)
//
// A cluster hub reads the upstream only while its process holds the key's
// lease (see link), and then resumes it from the last id the store holds.
func (h *Hub) start(up *http.Request, rv *proxy.Revisit, srv *caddyhttp.Server) {
	h.up, h.srv, h.rv = up.Clone(context.Background()), srv, rv
	h.up.Header.Del("Last-Event-ID")
	if h.link != nil {
		go func() {
			h.link.run()
			h.close()
		}()
		return
	}
	go func() {
		defer h.close()
		h.readUpstream(h.ctx, "")
	}()
}

// readUpstream reads the upstream, with reconnects, until ctx ends, the
// upstream gives a final answer, or reconnecting gives up; over reports
// that it ended on its own (not by ctx). lastEventID, when set, goes with
// the first request. Events go to the hub's store.
func (h *Hub) readUpstream(parent context.Context, lastEventID string) (over bool) {
	// The hub's writer cancels ctx when it ends the stream (the upstream
	// gave up or answered finally): parent says who ended it.
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	req := h.up.Clone(ctx)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), nil, h.srv)
	h.read(ctx, cancel, req, h.rv)
	return parent.Err() == nil
}

// read runs one upstream request (with its reconnects) through the handler
// the hub adopted last; cancel ends it.
func (h *Hub) read(ctx context.Context, cancel context.CancelFunc, req *http.Request, rv *proxy.Revisit) {
	defer func() {
		// A panic here would take the whole process down: net/http only
		// recovers the goroutines it runs handlers on.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				// reverse_proxy's way to say a non-stream answer's body
				// broke (a stream's break is retried): its clients'
				// responses must break too, not end as if whole.
				h.mu.Lock()
				h.broken = true
				h.mu.Unlock()
				return
			}
			h.cfg.Logger.Error("shared stream: upstream handler panicked", zap.Any("panic", v))
		}
	}()
	s := &sink{hub: h, header: make(http.Header)}
	// The writer holds nothing (the sink holds events, bounded), and the
	// sink starts each upstream response afresh: an event a broken
	// response left incomplete never reaches a client.
	inner := proxy.NewWriter(s, &proxy.Options{}, "", cancel)
	defer inner.Close()
	attempt := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		s.restart()
		h.mu.Lock()
		next := h.next
		h.mu.Unlock()
		return next.ServeHTTP(w, r)
	})
	_ = h.cfg.Reconnect.Serve(ctx, inner, req, rv, attempt)
}

// adopt makes next the handler of the hub's next upstream attempt. It
// takes h.mu.
func (h *Hub) adopt(next caddyhttp.Handler) {
	h.mu.Lock()
	h.next = next
	h.mu.Unlock()
}

// eventCut counts an event the sink cut, and logs it (at most once a
// second per handler, the rest at debug level).
func (h *Hub) eventCut() {
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.eventsCut.Inc()
	}
	h.cfg.cutLog.Log(h.cfg.Logger, zapcore.WarnLevel,
		"shared stream: the upstream sent an event larger than max_event_size; it is dropped, and its clients get the next event",
		zap.Int("max_event_size", h.cfg.MaxEventSize))
}

// close marks the hub over: the upstream stream ended for good. The store
// stops delivering, clients are told, and the hub leaves the registry so
// the next client starts anew. It runs on the hub's upstream goroutine
// (the end of run), or a test's, and takes registryMu, then h.mu → s.mu.
func (h *Hub) close() {
	h.closeOnce.Do(func() {
		h.store.Close()
		registryMu.Lock()
		if registry[h.key] == h {
			delete(registry, h.key)
		}
		registryMu.Unlock()
		h.mu.Lock()
		h.markReady()
		h.state = over
		var wakes []func()
		for s := range h.subs {
			s.mu.Lock()
			s.closed = true
			if wake := s.notify(); wake != nil {
				wakes = append(wakes, wake)
			}
			s.mu.Unlock()
		}
		if h.linger != nil {
			h.linger.Stop()
		}
		h.mu.Unlock()
		for _, wake := range wakes {
			wake()
		}
		h.cancel()
		if h.cfg.Metrics != nil {
			h.cfg.Metrics.hubs.Dec()
		}
	})
}

// Ready is closed once the upstream's answer is known.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Answer is the upstream's answer as s's client gets it: the status and
// header (copied), and whether it is an event stream. Any other answer's
// body comes through the client's queue as it arrives, and the hub closes
// when it ends. ok is false when the hub ended without an answer.
//
// Set-Cookie goes only to the client that started the hub: a cookie the
// backend set for that request (a new visitor's session, a login's state)
// is that client's, and would otherwise put every client that shares the
// stream in one session.
func (h *Hub) Answer(s *Sub) (status int, header http.Header, stream bool, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.header == nil {
		return 0, nil, false, false
	}
	header = h.header.Clone()
	if s != h.starter {
		header.Del("Set-Cookie")
	}
	return h.status, header, !h.nonStream, true
}

// Broken reports whether a non-stream answer's body broke before its end;
// known once the client's subscription is closed.
func (h *Hub) Broken() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.broken
}

// answer records the upstream's status and header, and lets the clients
// go on at once. A final answer (not a stream) is given to the clients
// that are waiting for it, its body as it comes (relayBody), as an
// unshared client would get it, even when it never ends. The hub leaves
// the registry: no one else joins it, and the next client starts anew.
func (h *Hub) answer(code int, header http.Header, stream bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != waiting {
		return
	}
	h.status, h.header = code, header
	h.markReady()
	if stream {
		h.state = streaming
		return
	}
	h.state, h.nonStream = final, true
	if registry[h.key] == h {
		delete(registry, h.key)
	}
}

// markReady lets the clients go on; callers hold h.mu.
func (h *Hub) markReady() {
	select {
	case <-h.ready:
	default:
		close(h.ready)
	}
}
