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
	"go.uber.org/zap/zapcore"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

var (
	registryMu sync.Mutex
	registry   = map[string]*Hub{}
)

// Join subscribes a client to the hub for key, starting the hub (and its
// Join subscribes a client to the hub for key, starting the hub (and its
// upstream request, up, through next) if there is none; a hub it starts
// keeps the upstream's cookies for its reconnects in rv. lastEventID, when
// set, asks for the events after it from the replay buffer; a hub that
// starts has none, so such a client joins live. The caller must Leave the
// returned subscription.
func Join(key string, cfg *Config, up *http.Request, rv *proxy.Revisit, next caddyhttp.Handler, srv *caddyhttp.Server, lastEventID string) (*Hub, *Sub) {
	registryMu.Lock()
	hub, ok := registry[key]
	if !ok {
		hub = newHub(key, cfg)
		registry[key] = hub
	}
	sub := hub.subscribe(lastEventID)
	if !ok {
		hub.starter = sub // set before the hub is shared: no lock needed
	}
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
	// starter is the subscription whose request the upstream answers: the
	// only one that gets the answer's Set-Cookie (see Answer). Set once,
	// before the hub is in the registry.
	starter *Sub

	mu        sync.Mutex
	state     state
	status    int
	header    http.Header
	nonStream bool // the answer is not an event stream
	broken    bool // the non-stream answer's body broke before its end
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
//
// The first client's Last-Event-ID is not sent: the stream is everyone's,
// and an upstream that resumed from that client's position would send the
// events it missed to every client that joins, most of them up to date.
// Each client's position is its own, in the replay buffer. (The proxy's
// Shaper has already moved a last_event_id_query parameter into the header
// and off the URL.)
func (h *Hub) start(up *http.Request, rv *proxy.Revisit, next caddyhttp.Handler, srv *caddyhttp.Server) {
	req := up.Clone(h.ctx)
	req.Header.Del("Last-Event-ID")
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), nil, srv)
	go h.run(req, rv, next)
}

func (h *Hub) run(req *http.Request, rv *proxy.Revisit, next caddyhttp.Handler) {
	defer h.close()
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
	inner := proxy.NewWriter(s, &proxy.Options{}, "", h.cancel)
	defer inner.Close()
	attempt := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		s.restart()
		return next.ServeHTTP(w, r)
	})
	_ = h.cfg.Reconnect.Serve(h.ctx, inner, req, rv, attempt)
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
		// Replayed events do not count against the client's buffer, and
		// are not copied: the client holds the replay buffer's own
		// (immutable) events, and takes them a batch at a time. A copy
		// each would let every client that resumes from far back and
		// then reads nothing hold up to replay_max_bytes.
		s.replayed = events
		if len(s.replayed) > 0 {
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

// publish adds a complete event to the replay buffer and every queue. The
// drainers that need starting are started after the hub's lock is let go,
// so that joining and leaving clients do not wait for them. Only the hub's
// upstream goroutine publishes, so wakes is its own.
func (h *Hub) publish(ev []byte, id string, own bool) {
	h.mu.Lock()
	h.replay.Add(buffer.Event{Data: ev, ID: id, OwnID: own, At: time.Now()}, time.Now())
	wakes := h.queueAll(ev)
	h.mu.Unlock()
	h.startDrainers(wakes)
}

// relayBody queues part of a final answer's body for every client, as it
// comes (it is not kept for replay); a client that falls client_buffer
// behind is evicted. Only the hub's upstream goroutine calls it.
func (h *Hub) relayBody(p []byte) {
	h.mu.Lock()
	wakes := h.queueAll(p)
	h.mu.Unlock()
	h.startDrainers(wakes)
}

// queueAll queues p (copied) for every client and returns the drainers to
// start once h.mu, which the caller holds, is let go. Only the hub's
// upstream goroutine calls it, so h.wakes is its own.
func (h *Hub) queueAll(p []byte) []func() {
	wakes := h.wakes[:0]
	for s := range h.subs {
		if wake := s.push(p); wake != nil {
			wakes = append(wakes, wake)
		}
	}
	return wakes
}

// startDrainers calls the wake functions queueAll returned, without h.mu.
func (h *Hub) startDrainers(wakes []func()) {
	for i, wake := range wakes {
		wake()
		wakes[i] = nil
	}
	h.wakes = wakes
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
	// replayed are the events a resuming client missed, shared with the
	// replay buffer; they go out before queue.
	replayed []buffer.Event
	queue    []byte
	spare    []byte
	limit    int
	active   bool // the client's handler is running
	evicted  bool
	closed   bool
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
	if len(s.queue) > 0 || len(s.replayed) > 0 || s.evicted || s.closed {
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
	if len(s.queue) == 0 && len(s.replayed) == 0 && !s.evicted && !s.closed {
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
	batch, more := s.next()
	return batch, s.evicted, s.closed && !more, false
}

// next takes the next batch: replayed events first, copied a batch of at
// most limit bytes (or one event) at a time, then the whole queue. more
// reports that something is left to take. Callers hold s.mu.
func (s *Sub) next() (batch []byte, more bool) {
	if len(s.replayed) == 0 {
		batch = s.queue
		s.queue, s.spare = s.spare[:0], nil
		return batch, false
	}
	batch, s.spare = s.spare[:0], nil
	n := 0
	for n < len(s.replayed) && (n == 0 || len(batch)+len(s.replayed[n].Data) <= s.limit) {
		batch = append(batch, s.replayed[n].Data...)
		s.replayed[n] = buffer.Event{} // let the buffer drop it
		n++
	}
	s.replayed = s.replayed[n:]
	if len(s.replayed) == 0 {
		s.replayed = nil
	}
	return batch, len(s.replayed) > 0 || len(s.queue) > 0
}

// push queues an event, or evicts the client when its queue is full. An
// event always goes into an empty queue, however large (the sink cuts
// events over max_event_size): a client that keeps up is never evicted for
// the size of one event, so a queue holds at most the larger of
// client_buffer and max_event_size. It returns the drainer to start, if
// any (see notify). Called with the hub's lock held.
func (s *Sub) push(ev []byte) (wake func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.evicted || s.closed || !s.active {
		return nil
	}
	if len(s.queue) > 0 && len(s.queue)+len(ev) > s.limit {
		s.evicted = true
		s.queue, s.replayed = s.queue[:0], nil
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

// Take returns what is queued, to be written in one go, and whether the
// client was evicted or the hub closed (once nothing is left to take).
// Replayed events come a batch at a time; while more is left, Signal has
// a token again. Give the slice back with Done.
func (s *Sub) Take() (batch []byte, evicted, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch, more := s.next()
	if more {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
	return batch, s.evicted, s.closed && !more
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
