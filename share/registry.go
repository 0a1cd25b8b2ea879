package share

import (
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// registryMu guards registry: which hub serves which key. It is first in
// the lock order (registryMu → Hub.mu → Sub.mu) and is never held across
// network I/O. It is process-wide: hubs outlive the config that started
// them (see Join).
var (
	registryMu sync.Mutex
	registry   = map[string]*Hub{}
)

// Join subscribes a client to the hub for key, starting the hub (and its
// upstream request, up, through next) if there is none; a hub it starts
// keeps the upstream's cookies for its reconnects in rv. lastEventID, when
// set, asks for the events after it from the replay buffer; a hub that
// starts has none, so such a client joins live — unless the config has a
// cluster store, which Join then asks (a network round trip on the
// caller's goroutine, bounded by the store's lease). The caller must
// Leave the returned subscription.
//
// A running hub keeps the cfg and srv of the Join that started it for as
// long as it runs, across config reloads: a client of a newer config that
// joins it gets the old config's replay limits, client buffer and
// reconnect policy, and the upstream request keeps the old server in its
// context. next is the exception: each Join hands its next to the hub, and
// the hub's next upstream attempt (a reconnect) goes through it. A reload
// cancels the old config's handlers' context, and reverse_proxy stops its
// load-balancer retries (lb_try_duration, lb_try_interval) once its
// context is cancelled: a hub that kept the old next would reconnect
// without them. A client of the old config that joins after the reload
// (on a connection the old server still serves) hands the old next back
// until the next client of the new one joins.
func Join(key string, cfg *Config, up *http.Request, rv *proxy.Revisit, next caddyhttp.Handler, srv *caddyhttp.Server, lastEventID string) (*Hub, *Sub) {
	registryMu.Lock()
	hub, ok := registry[key]
	if !ok {
		hub = newHub(key, cfg)
		registry[key] = hub
	}
	sub := hub.subscribe(lastEventID)
	hub.adopt(next)
	if !ok {
		hub.starter = sub // set before the hub is shared: no lock needed
	}
	registryMu.Unlock()
	if !ok {
		hub.start(up, rv, srv)
	}
	if sub.catchUp != nil {
		hub.catchUp(sub)
	}
	return hub, sub
}

// subscribe adds a client; with a known lastEventID its queue starts with
// the events after it. Callers hold registryMu, so a lingering hub cannot
// be stopped in between; subscribe takes h.mu.
func (h *Hub) subscribe(lastEventID string) *Sub {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &Sub{hub: h, signal: make(chan struct{}, 1), active: true, limit: h.cfg.ClientBuffer}
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	if lastEventID != "" {
		events, ok := h.history.After(lastEventID, time.Now())
		if !ok && h.link != nil {
			// Another process may have served the client: the store
			// holds the cluster's events (Join asks it, without locks).
			h.startCatchUp(s, lastEventID)
			events = nil
		} else if h.cfg.Metrics != nil {
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
	if h.state == over {
		s.closed = true
		s.notify() // s is not shared yet (no lock needed) and has no wake
	}
	return s
}

// Leave removes a client. The last one to leave starts the linger timer.
// It takes s.mu, then (not nested) h.mu.
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
	if len(h.subs) == 0 && h.state != over {
		h.linger = time.AfterFunc(h.cfg.Linger, h.stopIfIdle)
	}
}

// stopIfIdle ends the upstream stream unless a client joined meanwhile. It
// runs on the linger timer's goroutine and takes registryMu, then h.mu.
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
