package sseproxy

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
	"github.com/sse-proxy/caddy-sse-proxy/share"
)

// The parts of Handler's config, each defined once. CORS and AuthHeader
// are taken by the proxy package as they are, so they are defined there
// (their field comments are the JSON docs). Share and Reconnect are
// compiled, with their defaults, into share.Config and proxy.Reconnect by
// compileShare and reconnectPolicy below.

// CORS is the JSON form of the cross-origin policy.
type CORS = proxy.CORSConfig

// AuthHeader is one header field set on the upstream request.
type AuthHeader = proxy.AuthHeader

// Share is the JSON form of stream sharing.
type Share struct {
	// A placeholder template; requests whose expansions are equal share
	// one upstream stream. Default: the method, host, path and sorted
	// query of the upstream request (after token and last_event_id_query
	// parameters are removed) and the values of every auth header, so that
	// clients with different credentials never share. With a template,
	// the upstream request carries the credentials of the client that
	// started it.
	Key string `json:"key,omitempty"`
	// How long a stream with no clients keeps its upstream request, so
	// that a quick reconnect does not restart it. Default: 5s.
	Linger caddy.Duration `json:"linger,omitempty"`
	// Most recent events kept for Last-Event-ID replay. Default: 1000.
	Replay int `json:"replay,omitempty"`
	// Oldest event kept for replay. Default: no age limit.
	ReplayFor caddy.Duration `json:"replay_for,omitempty"`
	// Bytes kept for replay. Default: 8 MiB.
	ReplayMaxBytes int `json:"replay_max_bytes,omitempty"`
	// Bytes queued for one client before it is evicted as too slow (it
	// resumes from the replay buffer when it comes back). Default: 1 MiB.
	ClientBuffer int `json:"client_buffer,omitempty"`
	// Where shared streams keep and order their events: "memory" (the
	// default), each Caddy process on its own, or "redis", one stream for
	// a cluster of Caddy instances: one instance reads each upstream, and
	// a client resumes on any instance.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.handlers.sse_proxy.stores inline_key=module"`
}

// Defaults of stream sharing.
const (
	DefaultShareLinger    = 5 * time.Second
	DefaultReplay         = 1000
	DefaultReplayMaxBytes = 8 << 20
	DefaultClientBuffer   = 1 << 20
)

// Reconnect is the JSON form of the upstream reconnect policy.
type Reconnect struct {
	// Turn transparent reconnects off: upstream errors and stream ends
	// reach the client as they are.
	Disabled bool `json:"disabled,omitempty"`
	// First wait before asking the upstream again. Default: 250ms.
	InitialDelay caddy.Duration `json:"initial_delay,omitempty"`
	// Longest wait between attempts (the wait doubles up to it, jittered).
	// Default: 5s, or initial_delay when that is longer.
	MaxDelay caddy.Duration `json:"max_delay,omitempty"`
	// How long the upstream may stay down before the client's stream is
	// ended with a jittered retry hint. Default: 30s.
	For caddy.Duration `json:"for,omitempty"`
}

// Defaults of the reconnect policy.
const (
	DefaultReconnectInitial = 250 * time.Millisecond
	DefaultReconnectMax     = 5 * time.Second
	DefaultReconnectFor     = 30 * time.Second
	DefaultMaxEventSize     = 1 << 20
)

// compile turns the JSON config into what streams use, and reports every
// configuration error.
func (h *Handler) compile() error {
	switch {
	case h.Heartbeat == 0:
		h.opts.Heartbeat = DefaultHeartbeat
	case h.Heartbeat > 0:
		h.opts.Heartbeat = time.Duration(h.Heartbeat)
	default:
		h.opts.Heartbeat = 0 // off
	}
	if h.Retry < 0 {
		return fmt.Errorf("sse_proxy: retry %s is negative", time.Duration(h.Retry))
	}
	h.opts.Retry = time.Duration(h.Retry)
	h.cors = nil
	if h.CORS != nil {
		c, err := proxy.NewCORS(*h.CORS)
		if err != nil {
			return fmt.Errorf("sse_proxy: %v", err)
		}
		h.cors = c
	}
	h.opts.CORS = h.cors
	for _, q := range h.LastEventIDQuery {
		if q == "" {
			return fmt.Errorf("sse_proxy: last_event_id_query: empty parameter name")
		}
	}
	s, err := proxy.NewShaper(h.AuthHeaders, h.LastEventIDQuery)
	if err != nil {
		return fmt.Errorf("sse_proxy: %v", err)
	}
	h.shaper = s

	if h.MaxAge < 0 {
		return fmt.Errorf("sse_proxy: max_age %s is negative", time.Duration(h.MaxAge))
	}
	if h.MaxEventSize < 0 {
		return fmt.Errorf("sse_proxy: max_event_size %d is negative", h.MaxEventSize)
	}
	h.reconnect, h.opts.MaxEventSize = nil, 0
	if h.Reconnect == nil || !h.Reconnect.Disabled {
		rc, err := reconnectPolicy(h.Reconnect)
		if err != nil {
			return err
		}
		rc.Hint = h.reconnectHint
		h.reconnect = rc
		h.opts.MaxEventSize = h.MaxEventSize
		if h.opts.MaxEventSize == 0 {
			h.opts.MaxEventSize = DefaultMaxEventSize
		}
	}
	h.sharedOpts = h.opts
	h.sharedOpts.MaxEventSize = 0
	return h.compileShare()
}

// reconnectPolicy compiles c, which may be nil, into a policy with the
// defaults filled in; the caller sets its Hint.
func reconnectPolicy(c *Reconnect) (*proxy.Reconnect, error) {
	rc := &proxy.Reconnect{Initial: DefaultReconnectInitial, Max: DefaultReconnectMax, For: DefaultReconnectFor}
	if c == nil {
		return rc, nil
	}
	for name, d := range map[string]caddy.Duration{"initial_delay": c.InitialDelay, "max_delay": c.MaxDelay, "for": c.For} {
		if d < 0 {
			return nil, fmt.Errorf("sse_proxy: reconnect %s %s is negative", name, time.Duration(d))
		}
	}
	if c.InitialDelay > 0 {
		rc.Initial = time.Duration(c.InitialDelay)
	}
	if c.MaxDelay > 0 {
		rc.Max = time.Duration(c.MaxDelay)
	} else if rc.Initial > rc.Max {
		rc.Max = rc.Initial // only a first wait, above the default longest
	}
	if c.For > 0 {
		rc.For = time.Duration(c.For)
	}
	if rc.Max < rc.Initial {
		return nil, fmt.Errorf("sse_proxy: reconnect: the longest wait %s is shorter than the first %s", rc.Max, rc.Initial)
	}
	return rc, nil
}

// compileShare checks the share settings and fills in the defaults.
func (h *Handler) compileShare() error {
	h.shareCfg = nil
	c := h.Share
	if c == nil {
		return nil
	}
	if c.Linger < 0 || c.ReplayFor < 0 || c.Replay < 0 || c.ReplayMaxBytes < 0 || c.ClientBuffer < 0 {
		return fmt.Errorf("sse_proxy: share: negative linger, replay, replay_for, replay_max_bytes or client_buffer")
	}
	cfg := &share.Config{
		Linger:       orDefault(time.Duration(c.Linger), DefaultShareLinger),
		Replay:       buffer.ReplayLimits{MaxEvents: orDefault(c.Replay, DefaultReplay), MaxAge: time.Duration(c.ReplayFor), MaxBytes: orDefault(c.ReplayMaxBytes, DefaultReplayMaxBytes)},
		ClientBuffer: orDefault(c.ClientBuffer, DefaultClientBuffer),
		MaxEventSize: orDefault(h.MaxEventSize, DefaultMaxEventSize),
	}
	// The shared upstream always reconnects, with the client's policy
	// when it is on and the defaults when it is off: it has no client of
	// its own to hand a broken stream to. Its clients end with their own
	// hints.
	var rcc *Reconnect
	if h.reconnect != nil {
		rcc = h.Reconnect
	}
	rc, err := reconnectPolicy(rcc)
	if err != nil {
		return err
	}
	rc.Hint = func() []byte { return nil }
	cfg.Reconnect = rc
	h.shareCfg = cfg
	return nil
}

// orDefault is v, or def when v is zero (unset).
func orDefault[T time.Duration | int](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}
