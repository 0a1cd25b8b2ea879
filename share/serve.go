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
func Serve(ctx context.Context, w http.ResponseWriter, sw *proxy.Writer, o *Options) error {
	hub, sub := Join(o.key(), o.Config, o.Upstream, o.Revisit, o.Next, o.Server, o.Upstream.Header.Get("Last-Event-ID"))
	tookOver := false
	defer func() {
		if !tookOver {
			hub.Leave(sub)
		}
	}()
	select {
	case <-hub.Ready():
	case <-ctx.Done():
		return nil
	}
	status, header, stream, ok := hub.Answer(sub)
	if !ok {
		return caddyhttp.Error(http.StatusBadGateway, errNoAnswer)
	}
	for k, v := range header {
		sw.Header()[k] = v
	}
	mayTakeOver := stream && canTakeOver(w, o.Upstream)
	if mayTakeOver {
		sw.CloseConnection()
	}
	sw.WriteHeader(status)
	if !stream {
		// An answer that is not a stream goes to the client as it comes,
		// as it would unshared, even one that stays open: its status
		// line now, its body below.
		sw.Flush()
	}
	if mayTakeOver && takeOver(w, sw, sub, o) {
		tookOver = true
		return nil
	}
	// Eviction cuts a client that stopped reading: its writes fail at once
	// instead of at the server's write_idle_timeout.
	rc := http.NewResponseController(w)
	sub.OnEvict(func() { _ = rc.SetWriteDeadline(time.Now()) })
	drain(sub, &keptClient{ctx: ctx, sub: sub, sw: sw, stream: stream, opts: o})
	return nil
}

// keptClient is a shared client served by its own handler goroutine, which
// waits on the subscription's Signal.
type keptClient struct {
	ctx    context.Context
	sub    *Sub
	sw     *proxy.Writer
	stream bool // the answer is an event stream
	opts   *Options
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
		k.sw.End(k.opts.Hint(), k.opts.Grace, proxy.ReasonUpstreamDown)
		return
	}
	if k.sub.hub.Broken() {
		panic(http.ErrAbortHandler)
	}
}
