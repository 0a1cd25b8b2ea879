package share

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// ConnOptions is how a client served on its own connection ends.
type ConnOptions struct {
	// Hint is the retry field written when the shared stream ends for good.
	Hint func() []byte
	// Grace bounds the wait for an event boundary when ending.
	Grace time.Duration
	// MaxAge, when positive, ends the stream after that long.
	MaxAge time.Duration
}

// connClient is a shared stream's HTTP/1.x client that no handler goroutine
// serves: its connection was taken over from net/http (see ServeConn).
type connClient struct {
	sub  *Sub
	sw   *proxy.Writer
	conn net.Conn
	// raw is the TCP connection under conn's TLS, if any: closing it cuts
	// the client off without a TLS close_notify, a write that could block
	// on a full connection.
	raw  net.Conn
	opts ConnOptions
	age  *time.Timer
	once sync.Once
	// evicted is set by the hub when it drops the client as too slow.
	evicted atomic.Bool
}

// ServeConn serves sub on conn, the connection of an HTTP/1.x client taken
// over from net/http (Hijack) after sw sent the header and was detached to
// conn (proxy.Writer.Detach). The handler can then return: an idle client
// keeps no handler goroutine, no net/http buffers and no per-request state,
// which is most of what it would cost otherwise.
//
// What is left per client is one goroutine blocked reading the connection,
// the only portable way to learn at once that a client went away (which
// ends the linger of a stream nobody watches); it holds a small stack and
// no buffer. Queued events are written by a goroutine that runs only while
// there is something to write (Sub.Wake), so no write to this client holds
// up anyone else. The stream ends — and the connection closes — when the
// client goes, is evicted, reaches max age, the hub closes for good, or the
// proxy ends it (reload, shutdown).
func (s *Sub) ServeConn(sw *proxy.Writer, conn net.Conn, opts ConnOptions) {
	c := &connClient{sub: s, sw: sw, conn: conn, raw: proxy.RawConn(conn), opts: opts}
	s.OnEvict(func() {
		// Not sw.SetReason here: the writer's lock is held by a write
		// stuck on the full connection, which closing it unblocks.
		c.evicted.Store(true)
		_ = c.raw.Close()
	})
	if opts.MaxAge > 0 {
		c.age = time.AfterFunc(opts.MaxAge, func() {
			sw.End(opts.Hint(), opts.Grace, proxy.ReasonMaxAge)
		})
	}
	go c.watch()
	s.Wake(func() { go c.drain() })
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

// drain writes what is queued, in one write per batch, until the queue is
// empty; Sub.Wake starts it again for the next event.
func (c *connClient) drain() {
	for {
		batch, evicted, closed, rest := c.sub.TakeOrRest()
		if rest {
			return
		}
		if len(batch) > 0 {
			_, err := c.sw.Write(batch)
			c.sub.Done(batch)
			if err != nil {
				// The client is gone (watch notices too) or was cut.
				_ = c.raw.Close()
				return
			}
		}
		if evicted {
			// The connection closes; the browser resumes from replay.
			c.evicted.Store(true)
			_ = c.raw.Close()
			return
		}
		if closed {
			// Ending closes the connection, and watch then ends the client.
			c.sw.End(c.opts.Hint(), c.opts.Grace, proxy.ReasonUpstreamDown)
			return
		}
	}
}
