package share

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// canTakeOver reports whether the connection of up's client may be taken
// over from net/http once its header is out: an HTTP/1.x request whose
// response net/http can hand over (see innermostHijacker). Asked before
// the header is written, since the header must then say that the
// connection closes after the stream.
func canTakeOver(w http.ResponseWriter, up *http.Request) bool {
	h, _ := innermostHijacker(w)
	return up.ProtoMajor == 1 && h != nil
}

// takeOver takes the client's connection over from net/http, once sw sent
// the header, and serves sub on it (see serveConn): the handler can then
// return. It reports false, and the caller keeps the client, when the
// stream must keep going through a writer above: a handler before this
// one (encode) compressing it, which shows as a Content-Encoding that
// went out, or a recorder that buffers (asked once the header was written,
// as it decides then); or when the stream is already ending.
func takeOver(w http.ResponseWriter, sw *proxy.Writer, sub *Sub, o *Options) bool {
	hijacker, buffered := innermostHijacker(w)
	if hijacker == nil || buffered || sw.Ended() || w.Header().Get("Content-Encoding") != "" {
		return false
	}
	// The header (and retry field) went out; the rest is ours. Bytes the
	// client sent after its request, if any, are dropped with net/http's
	// buffers: a stream's connection takes no more requests.
	hijack := func() (net.Conn, error) {
		conn, _, err := hijacker.Hijack()
		return conn, err
	}
	conn, err := sw.Detach(hijack, o.Upstream.ProtoAtLeast(1, 1))
	if err != nil {
		return false
	}
	var maxAge time.Duration
	if o.MaxAge > 0 {
		maxAge = max(time.Until(o.Born.Add(o.MaxAge)), time.Nanosecond)
	}
	sub.serveConn(sw, conn, o.Hint, o.Grace, maxAge)
	return true
}

// innermostHijacker returns the innermost writer under w that can hand its
// connection over (net/http's own response), or nil. The wrappers on the
// way are passed by: Caddy's response recorder, for one, would wrap the
// connection to count the bytes written for the access log, keeping
// net/http's response and its buffers alive and racing with the log's read
// of the count. The access log has the request when the client joins. An
// outer sse_proxy's writer, which writes of its own, rules the takeover out
// (nil). buffered reports a wrapper on the way that holds the response back
// (a buffering recorder, as intercept uses), which also rules it out.
func innermostHijacker(w http.ResponseWriter) (found http.Hijacker, buffered bool) {
	for {
		if b, ok := w.(interface{ Buffered() bool }); ok && b.Buffered() {
			buffered = true
		}
		if h, ok := w.(http.Hijacker); ok {
			found = h
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return found, buffered
		}
		if _, ok := w.(*proxy.Writer); ok {
			return nil, buffered
		}
		w = u.Unwrap()
	}
}

// connClient is a shared stream's HTTP/1.x client that no handler goroutine
// serves: its connection was taken over from net/http (see serveConn).
type connClient struct {
	sub  *Sub
	sw   *proxy.Writer
	conn net.Conn
	// raw is the TCP connection under conn's TLS, if any: closing it cuts
	// the client off without a TLS close_notify, a write that could block
	// on a full connection.
	raw   net.Conn
	hint  func() []byte
	grace time.Duration
	age   *time.Timer
	once  sync.Once
	// evicted is set by the hub when it drops the client as too slow.
	evicted atomic.Bool
}

// serveConn serves s on conn, the connection of an HTTP/1.x client taken
// over from net/http (Hijack) after sw sent the header and was detached to
// conn (proxy.Writer.Detach). The handler can then return: an idle client
// keeps no handler goroutine, no net/http buffers and no per-request state,
// which is most of what it would cost otherwise.
//
// What is left per client is one goroutine blocked reading the connection,
// the only portable way to learn at once that a client went away (which
// ends the linger of a stream nobody watches); it holds a small stack and
// no buffer. Queued events are written by a goroutine that runs only while
// there is something to write (Sub.Wake, then drain), so no write to this
// client holds up anyone else. The stream ends — and the connection
// closes — when the client goes, is evicted, reaches maxAge (when
// positive), the hub closes for good (with hint, within grace), or the
// proxy ends it (reload, shutdown).
func (s *Sub) serveConn(sw *proxy.Writer, conn net.Conn, hint func() []byte, grace, maxAge time.Duration) {
	c := &connClient{sub: s, sw: sw, conn: conn, raw: proxy.RawConn(conn), hint: hint, grace: grace}
	s.OnEvict(func() {
		// Not sw.SetReason here: the writer's lock is held by a write
		// stuck on the full connection, which closing it unblocks.
		c.evicted.Store(true)
		_ = c.raw.Close()
	})
	if maxAge > 0 {
		c.age = time.AfterFunc(maxAge, func() {
			sw.End(hint(), grace, proxy.ReasonMaxAge)
		})
	}
	go c.watch()
	s.Wake(func() { go drain(s, c) })
}

// watch reads the connection until it fails, then ends the client. A
// streaming client sends nothing after its request; the little it might
// send is read and dropped, and a client that keeps sending is cut off.
// Under TLS the raw connection is read: application data will never be
// read again, and its end is what matters.
func (c *connClient) watch() {
	var buf [64]byte
	for total := 0; total <= 4096; {
		n, err := c.raw.Read(buf[:])
		if err != nil {
			break
		}
		total += n
	}
	c.gone()
}

// gone ends the client once: the connection is closed and the subscription
// left; the writer counts the stream as ended.
func (c *connClient) gone() {
	c.once.Do(func() {
		// Close first: a write stuck on the connection holds the writer's
		// lock, which SetReason and Release take.
		_ = c.raw.Close()
		if c.evicted.Load() {
			c.sw.SetReason(proxy.ReasonEvicted)
		}
		c.sw.SetReason(proxy.ReasonClientGone)
		if c.age != nil {
			c.age.Stop()
		}
		c.sub.hub.Leave(c.sub)
		c.sw.Release()
	})
}

// take rests the drainer when there is nothing to take: Sub.Wake starts a
// new one for the next event.
func (c *connClient) take() (batch []byte, evicted, closed, stop bool) {
	return c.sub.TakeOrRest()
}

func (c *connClient) write(batch []byte) error {
	_, err := c.sw.Write(batch)
	return err
}

// failed closes the connection; watch notices, and ends the client.
func (c *connClient) failed() { _ = c.raw.Close() }

// evict closes the connection; the browser resumes from replay.
func (c *connClient) evict() {
	c.evicted.Store(true)
	_ = c.raw.Close()
}

// end ends the stream, which closes the connection; watch then ends the
// client.
func (c *connClient) end() {
	c.sw.End(c.hint(), c.grace, proxy.ReasonUpstreamDown)
}
