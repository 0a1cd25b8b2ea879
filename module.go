// Package sseproxy is a Caddy module that puts Server-Sent-Events backends
// behind Caddy and makes their streams work for browsers over HTTP/1.1,
// HTTP/2 and HTTP/3: no buffering, heartbeats between events, clean HTTP/2
// headers, a correct CORS policy, and auth headers injected from a cookie or
// a query parameter, all without touching the backend.
//
// The module is the middleware http.handlers.sse_proxy; the Caddyfile
// directive sse_proxy puts it in front of Caddy's own reverse_proxy.
package sseproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
	"github.com/sse-proxy/caddy-sse-proxy/share"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultHeartbeat is the heartbeat interval when none is configured: well
// under the 55-100 s idle cut of common load balancers and CDNs, and under
// Caddy's default write_idle_timeout of one minute.
const DefaultHeartbeat = 15 * time.Second

// endGrace is how long a stream that the proxy ends (on reload or shutdown)
// may take to reach an event boundary before it is cut where it is.
const endGrace = time.Second

// Handler is the sse_proxy middleware. For a text/event-stream response of
// the next handler (usually reverse_proxy) it sends the headers at once,
// flushes every write, writes heartbeat comments between events while the
// stream is idle, removes the header fields HTTP/2 and HTTP/3 forbid, turns
// off caching and transforming (so encode leaves the stream alone), and
// applies the CORS policy. Before calling the next handler it answers CORS
// preflights and sets the auth headers it owns on the upstream request.
// Other responses pass through, with CORS applied.
type Handler struct {
	// Idle time after which a comment line (":") is written between events,
	// so that no proxy, load balancer or browser on the path closes the
	// stream as idle. Default: 15s. A negative value turns heartbeats off.
	// Keep it under the server's write_idle_timeout (default 1m).
	Heartbeat caddy.Duration `json:"heartbeat,omitempty"`

	// When set, every stream starts with a "retry:" field that sets the
	// browser's reconnection delay.
	Retry caddy.Duration `json:"retry,omitempty"`

	// The CORS policy. When set, the proxy owns CORS: the upstream's
	// Access-Control-* fields are replaced and preflights are answered here.
	// When unset, CORS headers pass through from the upstream unchanged.
	CORS *CORS `json:"cors,omitempty"`

	// Header fields the proxy sets on the upstream request, with values
	// from placeholders such as {http.request.cookie.session} or
	// {http.request.uri.query.token}. The client's own copies are always
	// dropped. If a placeholder in a value is empty, the request is answered
	// 401 and the upstream is not contacted. Query parameters used in a
	// value are removed from the upstream URL.
	AuthHeaders []AuthHeader `json:"auth_headers,omitempty"`

	// How a client's stream survives upstream failures. On by default:
	// when the upstream's response ends or breaks, or its first answer to
	// an EventSource is a 5xx, a connection failure or a timeout, the
	// client's stream stays open (with heartbeats) while the upstream is
	// asked again with Last-Event-ID.
	Reconnect *Reconnect `json:"reconnect,omitempty"`

	// With reconnect on, each event is held until complete, so that no
	// partial event from a broken response reaches the client. An event
	// larger than this (bytes) streams through instead; if the upstream
	// breaks inside it, the client's stream ends. Default: 1 MiB.
	MaxEventSize int `json:"max_event_size,omitempty"`

	// End each stream at an event boundary after this age, with a retry
	// hint: for platforms that cap response duration, and to rebalance.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Query parameters that carry Last-Event-ID for clients that cannot
	// send the header (EventSource polyfills). The first one present is
	// sent upstream as the header (unless the client sent the header,
	// which wins) and all are removed from the upstream URL.
	LastEventIDQuery []string `json:"last_event_id_query,omitempty"`

	// Serve identical subscriptions from one upstream stream, with a
	// replay buffer for clients that resume. Applies to GET requests that
	// ask for an event stream (Accept: text/event-stream).
	Share *Share `json:"share,omitempty"`

	opts       proxy.Options
	sharedOpts proxy.Options // for shared streams: events arrive whole
	reconnect  *proxy.Reconnect
	shareCfg   *share.Config
	server     *caddyhttp.Server
	shaper     *proxy.Shaper
	cors       *proxy.CORS
	logger     *zap.Logger
	// rejected and badIDs rate-limit the lines about bad input.
	// (Pointers: Handler is copied by value in CaddyModule.)
	rejected, badIDs *proxy.RateLog
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sse_proxy",
		New: func() caddy.Module { return new(Handler) },
	}
}

var (
	metricsOnce  sync.Once
	metrics      *proxy.Metrics
	shareMetrics *share.Metrics
)

// Provision compiles the configuration and hooks stream shutdown into the
// server, so that reloads and stops end streams instead of waiting for them.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.rejected, h.badIDs = new(proxy.RateLog), new(proxy.RateLog)
	if err := h.compile(); err != nil {
		return err
	}
	metricsOnce.Do(func() {
		metrics = proxy.NewMetrics()
		shareMetrics = share.NewMetrics()
	})
	h.opts.Metrics = metrics
	h.opts.InvalidID = h.invalidID
	h.sharedOpts.Metrics = metrics
	h.sharedOpts.InvalidID = h.invalidID
	if h.reconnect != nil {
		h.reconnect.Logger = h.logger
		h.reconnect.Metrics = metrics
	}
	if h.shareCfg != nil && h.Share.StoreRaw != nil {
		mod, err := ctx.LoadModule(h.Share, "StoreRaw")
		if err != nil {
			return fmt.Errorf("sse_proxy: share store: %v", err)
		}
		st, ok := mod.(share.StoreModule)
		if !ok {
			return fmt.Errorf("sse_proxy: share store: module %T is not a store", mod)
		}
		h.shareCfg.Cluster = st.Cluster()
	}
	if h.shareCfg != nil {
		h.shareCfg.Logger = h.logger
		h.shareCfg.Metrics = shareMetrics
		h.shareCfg.Reconnect.Logger = h.logger
		h.shareCfg.Reconnect.Metrics = metrics
	}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := metrics.Register(reg); err != nil {
			return fmt.Errorf("sse_proxy: metrics: %v", err)
		}
		if err := shareMetrics.Register(reg); err != nil {
			return fmt.Errorf("sse_proxy: metrics: %v", err)
		}
	}
	h.opts.Streams = new(proxy.Streams)
	h.sharedOpts.Streams = h.opts.Streams
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil {
		h.server = srv
		// Fires on reload and on stop, before Caddy waits for requests to
		// finish: an endless stream would otherwise hold the old config,
		// or the process, forever.
		srv.RegisterOnShutdown(h.endStreams)
		if wi := time.Duration(srv.WriteIdleTimeout); wi > 0 && h.opts.Heartbeat > 0 && proxy.HeartbeatLatest(h.opts.Heartbeat) >= wi {
			h.logger.Warn("heartbeats may come later than the server's write_idle_timeout; idle streams will be cut",
				zap.Duration("heartbeat", h.opts.Heartbeat),
				zap.Duration("latest_heartbeat", proxy.HeartbeatLatest(h.opts.Heartbeat)),
				zap.Duration("write_idle_timeout", wi))
		}
	}
	return nil
}

// Validate has nothing left to check: Provision compiled the config and
// reported every error (compiling again here would replace the reconnect
// and share state that Provision wired to the logger and metrics).
func (h *Handler) Validate() error {
	if h.shaper == nil {
		return fmt.Errorf("sse_proxy: not provisioned")
	}
	return nil
}

// Cleanup ends the streams of this config; they reconnect to the new one.
func (h *Handler) Cleanup() error {
	h.endStreams()
	return nil
}

// endStreams ends every stream at an event boundary with a retry hint.
func (h *Handler) endStreams() {
	if h.opts.Streams == nil {
		return
	}
	if n := h.opts.Streams.EndAll(h.reconnectHint, endGrace); n > 0 {
		h.logger.Info("ended open streams for reload or shutdown", zap.Int("streams", n))
	}
}

// invalidID logs, once a second at most, that an upstream sent an event id
// that cannot be sent back to it.
func (h *Handler) invalidID() {
	h.badIDs.Log(h.logger, zap.WarnLevel, "an upstream event id holds a control character, which the Last-Event-ID header cannot carry: clients get it masked (ignored) and reconnects resume from the last valid id")
}

// reconnectHint is a retry field with jitter, so that the clients of a
// stopping server do not all come back in the same instant: between one
// and two times the configured retry (or one second).
func (h *Handler) reconnectHint() []byte {
	base := h.opts.Retry
	if base <= 0 {
		base = time.Second
	}
	return proxy.RetryLine(base + rand.N(base))
}

// ServeHTTP relays the request through the handlers after this one
// (reverse_proxy), as an event stream, or serves it from a shared stream.
// It only picks the way: a shared client's handler goroutine waits in
// serveShared for as long as its stream lasts, and every frame on that
// goroutine's stack counts, once per client (see share.Serve).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.shareCfg != nil && r.Method == http.MethodGet && proxy.WantsStream(r) {
		return h.serveShared(w, r, next)
	}
	return h.serve(w, r, next)
}

// serveShared serves a client of a shared stream (see share.Serve).
func (h *Handler) serveShared(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	c, err := h.begin(w, r, &h.sharedOpts)
	if c == nil {
		return err
	}
	defer c.finish(r)
	o := h.shareOptions(c, r, next)
	c.up = nil // share.Serve drops it once the client no longer needs it
	return share.Serve(c.ctx, w, c.sw, o)
}

// shareOptions is what share.Serve needs of h and of the client's request.
func (h *Handler) shareOptions(c *begun, r *http.Request, next caddyhttp.Handler) *share.Options {
	return &share.Options{
		Config: h.shareCfg, Upstream: c.up, Revisit: h.shaper.Revisit(r, c.repl), Next: next, Server: h.server,
		KeyTemplate: h.Share.Key, Replacer: c.repl, Owned: h.shaper.Owned(), UpstreamCORS: h.cors == nil,
		Hint: h.reconnectHint, Grace: endGrace, MaxAge: time.Duration(h.MaxAge), Born: c.born,
	}
}

// serve relays a request that is not shared through next, resuming the
// stream when it breaks if reconnect is on.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (err error) {
	c, err := h.begin(w, r, &h.opts)
	if c == nil {
		return err
	}
	defer c.finish(r)
	sw, up := c.sw, c.up
	if h.reconnect != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// A GET has no body, so it can be sent again.
		return h.reconnect.Serve(c.ctx, sw, up, h.shaper.Revisit(r, c.repl), next)
	}
	defer func() {
		// When the proxy ended the stream itself (reload, shutdown), the
		// upstream request was cancelled and reverse_proxy aborts with
		// http.ErrAbortHandler; the client's response ends cleanly instead.
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler && sw.Ended() {
				err = nil
				return
			}
			panic(v)
		}
	}()
	return next.ServeHTTP(sw, up)
}

// begun is a request that begin accepted: its upstream request, shaped,
// and the writer its answer goes through.
type begun struct {
	ctx    context.Context
	cancel context.CancelFunc
	repl   *caddy.Replacer
	up     *http.Request
	sw     *proxy.Writer
	born   time.Time
	maxAge *time.Timer // ends the stream at max_age; nil without one
}

// begin answers a CORS preflight, shapes the upstream request and makes
// the client's writer with opts. It returns nil when the request is
// answered already (err, if any, is for Caddy); otherwise the caller
// defers finish.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, opts *proxy.Options) (*begun, error) {
	origin := r.Header.Get("Origin")
	if h.cors != nil && proxy.IsPreflight(r) {
		h.cors.Preflight(w.Header(), origin)
		w.WriteHeader(http.StatusNoContent)
		return nil, nil
	}
	c := new(begun)
	c.ctx, c.cancel = context.WithCancel(r.Context())
	c.repl, _ = r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	up, err := h.shaper.Shape(c.ctx, r, c.repl)
	if err != nil {
		c.cancel()
		return nil, h.refuse(w, origin, err)
	}
	c.up = up
	c.sw = proxy.NewWriter(w, opts, origin, c.cancel)
	c.born = time.Now()
	if h.MaxAge > 0 {
		sw := c.sw
		c.maxAge = time.AfterFunc(time.Duration(h.MaxAge), func() {
			sw.End(h.reconnectHint(), endGrace, proxy.ReasonMaxAge)
		})
	}
	return c, nil
}

// refuse answers a request whose upstream request could not be shaped:
// a 400 for a credential or last event id that cannot be a header value,
// answered here; otherwise a 401 for Caddy to answer.
func (h *Handler) refuse(w http.ResponseWriter, origin string, err error) error {
	if h.cors != nil {
		h.cors.Apply(w.Header(), origin) // let the page see the 4xx
	}
	if errors.Is(err, proxy.ErrBadRequest) {
		// Answered here, before reverse_proxy: the upstream is never
		// asked, so its health is not touched. The body names what was
		// wrong (never the value: it may be a credential).
		h.rejected.Log(h.logger, zap.InfoLevel, "rejected a request whose credential or last event id cannot be a header value", zap.Error(err))
		http.Error(w, "sse_proxy: "+err.Error(), http.StatusBadRequest)
		return nil
	}
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

// finish is what the handler does on its way out, panicking or not: it
// stops the max_age timer, records a client that went away as the
// stream's end reason, closes the writer and cancels the upstream request.
func (c *begun) finish(r *http.Request) {
	if c.maxAge != nil {
		c.maxAge.Stop()
	}
	if r.Context().Err() != nil {
		c.sw.SetReason(proxy.ReasonClientGone)
	}
	c.sw.Close()
	c.cancel()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
