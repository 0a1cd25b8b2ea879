// Package share serves many identical event-stream subscriptions from one
// upstream stream: a hub per key runs the upstream request in the
// background (through the next handler, so reverse_proxy's load balancing
// and health checks apply), keeps recent events for Last-Event-ID replay,
// and fans events out to a bounded queue per client.
//
// Hubs live in a package-level registry, so they outlive config reloads:
// clients that a reload ends come back to the same running upstream stream.
// caddy.UsagePool is not used because it destroys a value as soon as its
// last reference goes, while a hub must linger for quick reconnects.
package share

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// Config is what a hub needs from the handler that starts it.
type Config struct {
	// Linger is how long a hub without clients keeps its upstream stream.
	Linger time.Duration
	// Replay bounds the events kept for clients that resume.
	Replay buffer.ReplayLimits
	// ClientBuffer is the most bytes queued for one client before it is
	// evicted as too slow.
	ClientBuffer int
	// MaxEventSize bounds an event held while incomplete.
	MaxEventSize int
	// Reconnect is the upstream reconnect policy. Its Hint should return
	// nil: when the hub gives up, each client ends with a hint of its own.
	Reconnect *proxy.Reconnect
	// Logger and Metrics are the handler's.
	Logger  *zap.Logger
	Metrics *Metrics
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Hub{}
)

// Join subscribes a client to the hub for key, starting the hub (and its
// upstream request, up, through next) if there is none; a hub it starts
// keeps the upstream's cookies for its reconnects in rv. lastEventID, when
// set, asks for the events after it from the replay buffer. The caller must
// Leave the returned subscription.
func Join(key string, cfg *Config, up *http.Request, rv *proxy.Revisit, next caddyhttp.Handler, srv *caddyhttp.Server, lastEventID string) (*Hub, *Sub) {
	registryMu.Lock()
	hub, ok := registry[key]
	if !ok {
		hub = newHub(key, cfg)
		registry[key] = hub
	}
	sub := hub.subscribe(lastEventID)
	registryMu.Unlock()
	if !ok {
		hub.start(up, rv, next, srv)
	}
	return hub, sub
}

// state of a hub's upstream answer.
type state uint8

const (
	waiting   state = iota // no answer yet
	streaming              // an event stream
	final                  // a non-stream answer, given to every client as is
	closed                 // the upstream stream is over
)

// Hub is one shared upstream stream.
type Hub struct {
	key    string
	cfg    *Config
	ctx    context.Context
	cancel context.CancelFunc
	ready  chan struct{} // closed once the answer is known (markReady)

	mu        sync.Mutex
	state     state
	status    int
	header    http.Header
	body      []byte // of a final answer, bounded
	replay    *buffer.Replay
	subs      map[*Sub]struct{}
	linger    *time.Timer
	closeOnce sync.Once
	wakes     []func() // publish's list of drainers to start, kept for reuse
}

func newHub(key string, cfg *Config) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		key: key, cfg: cfg, ctx: ctx, cancel: cancel,
		ready:  make(chan struct{}),
		replay: buffer.NewReplay(cfg.Replay),
		subs:   map[*Sub]struct{}{},
	}
	if cfg.Metrics != nil {
		cfg.Metrics.hubs.Inc()
	}
	return h
}

// start runs the upstream request in the background. The request is a copy
// of the first client's, with a context that no client owns and Caddy's
// per-request state made afresh: reverse_proxy writes to the replacer and
// vars of the request it serves.
func (h *Hub) start(up *http.Request, rv *proxy.Revisit, next caddyhttp.Handler, srv *caddyhttp.Server) {
	req := up.Clone(h.ctx)
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), nil, srv)
	go h.run(req, rv, next)
}

func (h *Hub) run(req *http.Request, rv *proxy.Revisit, next caddyhttp.Handler) {
	defer h.close()
	defer func() {
		// A panic here would take the whole process down: net/http only
		// recovers the goroutines it runs handlers on.
		if v := recover(); v != nil {
			h.cfg.Logger.Error("shared stream: upstream handler panicked", zap.Any("panic", v))
		}
	}()
	s := &sink{hub: h, header: make(http.Header)}
	inner := proxy.NewWriter(s, &proxy.Options{MaxEventSize: h.cfg.MaxEventSize}, "", h.cancel)
	defer inner.Close()
	_ = h.cfg.Reconnect.Serve(h.ctx, inner, req, rv, next)
}

// subscribe adds a client; with a known lastEventID its queue starts with
// the events after it. Callers hold registryMu, so a lingering hub cannot
// be stopped in between.
func (h *Hub) subscribe(lastEventID string) *Sub {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Sub{hub: h, signal: make(chan struct{}, 1), active: true, limit: h.cfg.ClientBuffer}
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	if lastEventID != "" {
		events, ok := h.replay.After(lastEventID, time.Now())
		if h.cfg.Metrics != nil {
			if ok {
				h.cfg.Metrics.replayHits.Inc()
			} else {
				h.cfg.Metrics.replayMisses.Inc()
			}
		}
		for _, e := range events {
			s.queue = append(s.queue, e.Data...)
		}
		// Replayed events do not count against the client's buffer.
		s.limit += len(s.queue)
		if len(s.queue) > 0 {
			s.signal <- struct{}{}
		}
	}
	h.subs[s] = struct{}{}
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.subscribers.Inc()
	}
	if h.state == closed {
		s.closed = true
		s.notify() // s is not shared yet (no lock needed) and has no wake
	}
	return s
}

// Leave removes a client. The last one to leave starts the linger timer.
func (h *Hub) Leave(s *Sub) {
	s.mu.Lock()
	s.active = false
	s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.subscribers.Dec()
	}
	if len(h.subs) == 0 && h.state != closed {
		h.linger = time.AfterFunc(h.cfg.Linger, h.stopIfIdle)
	}
}

// stopIfIdle ends the upstream stream unless a client joined meanwhile.
func (h *Hub) stopIfIdle() {
	registryMu.Lock()
	h.mu.Lock()
	idle := len(h.subs) == 0
	if idle && registry[h.key] == h {
		delete(registry, h.key)
	}
	h.mu.Unlock()
	registryMu.Unlock()
	if idle {
		h.cancel()
	}
}

// close marks the hub over: the upstream stream ended for good. Clients are
// told, and the hub leaves the registry so the next client starts anew.
func (h *Hub) close() {
	h.closeOnce.Do(func() {
		registryMu.Lock()
		if registry[h.key] == h {
			delete(registry, h.key)
		}
		registryMu.Unlock()
		h.mu.Lock()
		h.markReady()
		h.state = closed
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

// Answer is the upstream's answer as every client gets it: the status and
// header (copied), and whether it is an event stream; for any other
// answer, its body (up to 64 KiB). ok is false when the hub ended without
// an answer.
func (h *Hub) Answer() (status int, header http.Header, stream bool, body []byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.header == nil {
		return 0, nil, false, nil, false
	}
	return h.status, h.header.Clone(), h.body == nil, h.body, true
}

// publish adds a complete event to the replay buffer and every queue. The
// drainers that need starting are started after the hub's lock is let go,
// so that joining and leaving clients do not wait for them. Only the hub's
// upstream goroutine publishes, so wakes is its own.
func (h *Hub) publish(ev []byte, id string, own bool) {
	h.mu.Lock()
	h.replay.Add(buffer.Event{Data: ev, ID: id, OwnID: own, At: time.Now()}, time.Now())
	wakes := h.wakes[:0]
	for s := range h.subs {
		if wake := s.push(ev); wake != nil {
			wakes = append(wakes, wake)
		}
	}
	h.mu.Unlock()
	for i, wake := range wakes {
		wake()
		wakes[i] = nil
	}
	h.wakes = wakes
}

// answer records the upstream's status and header. A stream's clients
// start at once; a final answer waits for its body (see finish).
func (h *Hub) answer(code int, header http.Header, stream bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != waiting {
		return
	}
	h.status, h.header = code, header
	if stream {
		h.state = streaming
		h.markReady()
		return
	}
	h.state = final
	h.body = []byte{}
}

// markReady lets the clients go on; callers hold h.mu.
func (h *Hub) markReady() {
	select {
	case <-h.ready:
	default:
		close(h.ready)
	}
}

// finalBody collects a final answer's body, then makes it ready.
func (h *Hub) finalBody(p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := 64<<10 - len(h.body); room > 0 {
		h.body = append(h.body, p[:min(room, len(p))]...)
	}
}

// Sub is one client's subscription: a queue the hub appends whole events to
// and a goroutine of the client's drains, so that a slow client never holds
// up anyone else. That goroutine is either the client's handler, woken by
// Signal, or (Wake) one started whenever the queue fills from empty.
type Sub struct {
	hub    *Hub
	signal chan struct{} // a token: there is something to take

	mu sync.Mutex
	// wake, when set, starts a goroutine to drain the queue, instead of a
	// token on signal; running is true while that goroutine runs.
	wake    func()
	running bool
	queue   []byte
	spare   []byte
	limit   int
	active  bool // the client's handler is running
	evicted bool
	closed  bool
	// cutConn cuts the client's connection short (a write deadline in the
	// past), so that its goroutine, stuck writing, lets go.
	cutConn func()
}

// OnEvict sets how to cut the client's connection when it is evicted. f
// runs on another goroutine, but never after Leave.
func (s *Sub) OnEvict(f func()) {
	s.mu.Lock()
	s.cutConn = f
	s.mu.Unlock()
}

// cut runs cutConn unless the client's handler has finished: a write
// deadline on a finished HTTP/2 response panics.
func (s *Sub) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active && s.cutConn != nil {
		s.cutConn()
	}
}

// notify tells the drainer there is something to take: a token on signal,
// or, for a subscription served with Wake, the wake function to call (after
// the locks are let go) when no drainer runs. Callers hold s.mu.
func (s *Sub) notify() (wake func()) {
	if s.wake != nil {
		if !s.running {
			s.running = true
			return s.wake
		}
		return nil
	}
	select {
	case s.signal <- struct{}{}:
	default:
	}
	return nil
}

// Wake switches the subscription from Signal to wake: from now on, when
// there is something to take and no drainer runs, wake is called (it should
// start a goroutine) and that goroutine drains with TakeOrRest. A client
// served this way has no goroutine of its own while idle.
func (s *Sub) Wake(wake func()) {
	s.mu.Lock()
	s.wake = wake
	var start func()
	if len(s.queue) > 0 || s.evicted || s.closed {
		start = s.notify()
	}
	s.mu.Unlock()
	if start != nil {
		start()
	}
}

// TakeOrRest is Take for a drainer that Wake started: when there is
// nothing to take, the drainer is done (rest is true) and the next event
// starts a new one. Once the client is evicted or the hub closed, the
// drainer gets that news once and none starts again.
func (s *Sub) TakeOrRest() (batch []byte, evicted, closed, rest bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 && !s.evicted && !s.closed {
		s.running = false
		// An idle client keeps no large buffer from a burst.
		if cap(s.queue) > 4<<10 {
			s.queue = nil
		}
		if cap(s.spare) > 4<<10 {
			s.spare = nil
		}
		return nil, false, false, true
	}
	batch = s.queue
	s.queue, s.spare = s.spare[:0], nil
	return batch, s.evicted, s.closed, false
}

// push queues an event, or evicts the client when its queue is full. It
// returns the drainer to start, if any (see notify). Called with the hub's
// lock held.
func (s *Sub) push(ev []byte) (wake func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicted || s.closed || !s.active {
		return nil
	}
	if len(s.queue)+len(ev) > s.limit {
		s.evicted = true
		s.queue = s.queue[:0]
		if m := s.hub.cfg.Metrics; m != nil {
			m.evictions.Inc()
		}
		go s.cut() // not here: the hub's lock is held
		return s.notify()
	}
	s.queue = append(s.queue, ev...)
	return s.notify()
}

// Signal is ready to receive when there is something to Take.
func (s *Sub) Signal() <-chan struct{} { return s.signal }

// Take returns everything queued, to be written in one go, and whether the
// client was evicted or the hub closed. Give the slice back with Done.
func (s *Sub) Take() (batch []byte, evicted, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch = s.queue
	s.queue, s.spare = s.spare[:0], nil
	return batch, s.evicted, s.closed
}

// Done returns a batch's memory for reuse, unless it grew large.
func (s *Sub) Done(batch []byte) {
	if cap(batch) > 64<<10 {
		return
	}
	s.mu.Lock()
	s.spare = batch[:0]
	s.mu.Unlock()
}
