package share

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// Options is what Serve needs to know of the handler and the request,
// besides the client's writers.
type Options struct {
	// Config is the handler's share config. A hub this client starts keeps
	// it, with Next and Server, for as long as it runs (see Join).
	Config *Config
	// Upstream is the shaped upstream request. Its Last-Event-ID header is
	// the client's position in the stream.
	Upstream *http.Request
	// Revisit keeps the upstream's cookies for a hub's reconnects.
	Revisit *proxy.Revisit
	// Next is the handler after sse_proxy (reverse_proxy), and Server the
	// server the request came to: a hub calls Next with a request of its
	// own, prepared for Server.
	Next   caddyhttp.Handler
	Server *caddyhttp.Server

	// KeyTemplate, when set, is the placeholder template of the sharing
	// key, expanded with Replacer (see CustomKey); otherwise the key is
	// DefaultKey over the credential fields in Owned.
	KeyTemplate string
	Replacer    *caddy.Replacer
	Owned       []string
	// UpstreamCORS is true when the proxy has no CORS policy, so that
	// clients of different origins do not share (see key).
	UpstreamCORS bool

	// Hint returns the retry field a stream ends with when its hub is over.
	Hint func() []byte
	// Grace bounds the wait for an event boundary when a stream ends.
	Grace time.Duration
	// MaxAge, when positive, ends the stream at Born plus MaxAge. The
	// handler's own timer does so while it keeps the client; a connection
	// taken over gets a timer of its own.
	MaxAge time.Duration
	Born   time.Time
}

// errNoAnswer is the client's 502 when the hub ended before the upstream
// answered.
var errNoAnswer = errors.New("sse_proxy: the shared upstream stream ended without an answer")

// Serve serves a shared client: it joins the hub for the client's key,
// waits for the upstream's answer, sends the client its status and header
// through sw, and relays what the hub queues for it (see drain), in
// batches: a slow client never holds up the hub or anyone else. An
// HTTP/1.x client's connection is taken over once the header is out, and
// Serve returns at once (see takeOver); any other client is served from
// the caller's goroutine until its stream ends. ctx ends when the client
// leaves or the proxy ends the stream. Like a handler, Serve may panic with
// http.ErrAbortHandler: a client evicted as too slow, or a non-stream
// answer whose body broke, must see its response broken, not ended.
//
// Serve itself only joins, drains and leaves: everything before the drain
// is in admit, whose frame is gone from the stack by the time the client
// waits. An HTTP/2 or HTTP/3 client keeps its handler goroutine for as
// long as its stream lasts, and that goroutine's stack stays at the size
// its deepest call ever needed (the runtime shrinks a stack only when less
// than a quarter of it is in use). Under Caddy's server the deepest call is
// a write of an event; keeping this package's frames on that path small is
// what keeps such a stack at 8 KiB instead of 16 KiB (README, Performance,
// "Fan-out at browser scale").
func Serve(ctx context.Context, w http.ResponseWriter, sw *proxy.Writer, o *Options) error {
	hub, sub := o.join()
	k, err := admit(ctx, w, sw, o, sub)
	if k == nil {
		return err
	}
	defer hub.Leave(sub)
	drain(sub, k)
	return nil
}

// join joins the hub for the client's key.
func (o *Options) join() (*Hub, *Sub) {
	return Join(o.key(), o.Config, o.Upstream, o.Revisit, o.Next, o.Server, o.Upstream.Header.Get("Last-Event-ID"))
}

// admit is Serve from the join to the drain: it waits for the upstream's
// answer and sends the header. It returns the client to drain, or nil once
// the client is dealt with (gone, answered with err, or its connection
// taken over); a nil client has left the hub, or belongs to the connection
// that took it over.
//
// The header goes out from admit's own frame, which is kept small: that
// write is among the deepest calls a shared client's goroutine makes (see
// Serve). What needs room on the stack (the wait, the header's copy) is
// done in calls that return first.
func admit(ctx context.Context, w http.ResponseWriter, sw *proxy.Writer, o *Options, sub *Sub) (*keptClient, error) {
	kept := false
	defer func() {
		if !kept {
			sub.hub.Leave(sub)
		}
	}()
	if !wait(ctx, sub.hub) {
		return nil, nil
	}
	var a answer
	var ok bool
	if a.status, a.header, a.stream, ok = sub.hub.Answer(sub); !ok {
		return nil, caddyhttp.Error(http.StatusBadGateway, errNoAnswer)
	}
	mayTakeOver := a.stream && canTakeOver(w, o.Upstream)
	a.prepare(sw, mayTakeOver)
	sw.WriteHeader(a.status)
	if !a.stream {
		// An answer that is not a stream goes to the client as it comes,
		// as it would unshared, even one that stays open: its status
		// line now, its body below.
		sw.Flush()
	}
	if mayTakeOver && takeOver(w, sw, sub, o) {
		kept = true // the connection's now
		return nil, nil
	}
	kept = true
	return keep(ctx, w, sw, sub, a.stream, o), nil
}

// wait waits for hub's answer, or reports false when ctx ends first. It is
// not inlined so that the select's room on the stack is not admit's.
//
//go:noinline
func wait(ctx context.Context, hub *Hub) bool {
	select {
	case <-hub.Ready():
		return true
	case <-ctx.Done():
		return false
	}
}

// answer is the upstream's answer, as a client of the hub gets it.
type answer struct {
	status int
	header http.Header
	stream bool // an event stream
}

// prepare puts the answer's header on sw, and asks for the connection to
// close after the stream when it is to be taken over.
func (a *answer) prepare(sw *proxy.Writer, mayTakeOver bool) {
	for k, v := range a.header {
		sw.Header()[k] = v
	}
	if mayTakeOver {
		sw.CloseConnection()
	}
}

// keep makes the client that the caller's goroutine drains: one that is
// evicted has its writes cut short (a write deadline in the past) instead
// of waiting for the server's write_idle_timeout. It keeps only what the
// end of the stream needs of o, so that a client waiting for events holds
// no copy of its request nor the cookies for a hub's reconnects.
func keep(ctx context.Context, w http.ResponseWriter, sw *proxy.Writer, sub *Sub, stream bool, o *Options) *keptClient {
	rc := http.NewResponseController(w)
	sub.OnEvict(func() { _ = rc.SetWriteDeadline(time.Now()) })
	return &keptClient{ctx: ctx, sub: sub, sw: sw, stream: stream, hint: o.Hint, grace: o.Grace}
}

// keptClient is a shared client served by its own handler goroutine, which
// waits on the subscription's Signal.
type keptClient struct {
	ctx    context.Context
	sub    *Sub
	sw     *proxy.Writer
	stream bool          // the answer is an event stream
	hint   func() []byte // the retry field the stream ends with
	grace  time.Duration // bounds the wait for an event boundary at the end
}

func (k *keptClient) take() (batch []byte, evicted, closed, stop bool) {
	select {
	case <-k.sub.Signal():
	case <-k.ctx.Done():
		return nil, false, false, true // the client left, or the proxy ended the stream
	}
	batch, evicted, closed = k.sub.Take()
	return batch, evicted, closed, false
}

func (k *keptClient) write(batch []byte) error {
	_, err := k.sw.Write(batch)
	if err == nil && !k.stream {
		err = k.sw.FlushError()
	}
	return err
}

// failed: the handler returns; net/http finds the client gone.
func (k *keptClient) failed() {}

// evict closes the stream (HTTP/2, HTTP/3) or connection (HTTP/1.x); the
// browser resumes from the replay buffer.
func (k *keptClient) evict() {
	k.sw.SetReason(proxy.ReasonEvicted)
	panic(http.ErrAbortHandler)
}

// end ends a stream with a retry hint. A non-stream answer's body is over
// with the hub; as unshared, one that broke is cut off, not ended.
func (k *keptClient) end() {
	if k.stream {
		k.sw.End(k.hint(), k.grace, proxy.ReasonUpstreamDown)
		return
	}
	if k.sub.hub.Broken() {
		panic(http.ErrAbortHandler)
	}
}
