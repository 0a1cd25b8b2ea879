package proxy

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// connWriter writes the body of an HTTP/1.x response straight to the
// connection it took over from net/http (Hijack), after net/http sent the
// header. net/http framed that header for chunked transfer coding when the
// request was HTTP/1.1, and for a body ended by closing the connection when
// it was HTTP/1.0; connWriter goes on the same way.
//
// net/http has no way to keep a response open without the goroutine that
// serves it, and that goroutine with its buffers is most of what an idle
// HTTP/1.1 stream costs; this small writer is what replaces them. Writes
// collect in a pooled buffer and go out in one system call per flush, so an
// idle stream holds no buffer.
type connWriter struct {
	conn net.Conn
	// raw is the TCP connection under conn's TLS, if any: closing it
	// ends the connection at once, without a TLS close_notify (a write
	// that can block on a full connection).
	raw     net.Conn
	tls     bool // conn is a TLS connection over raw
	chunked bool
	pending *[]byte   // framed bytes not yet written; nil when none
	until   time.Time // the write deadline set last
}

// stallTimeout bounds how long one write to a detached connection may
// block: a client whose connection takes no bytes for that long is gone,
// and ending its stream must not wait for it forever. (The deadline is
// moved on every half stallTimeout, so a write gets between half of it and
// all of it.)
const stallTimeout = time.Minute

func newConnWriter(conn net.Conn, chunked bool) *connWriter {
	_, isTLS := conn.(*tls.Conn)
	return &connWriter{conn: conn, raw: RawConn(conn), tls: isTLS, chunked: chunked}
}

// RawConn returns the TCP connection under a TLS connection, or conn.
func RawConn(conn net.Conn) net.Conn {
	if tc, ok := conn.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return conn
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Header is never read once the header was sent; it returns an empty map.
func (c *connWriter) Header() http.Header { return http.Header{} }

// WriteHeader does nothing: the header went out before the detach.
func (c *connWriter) WriteHeader(int) {}

// Write frames p as one chunk (HTTP/1.1) and holds it until FlushError.
func (c *connWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.pending == nil {
		c.pending = framePool.Get().(*[]byte)
	}
	b := *c.pending
	if c.chunked {
		b = strconv.AppendInt(b, int64(len(p)), 16)
		b = append(b, '\r', '\n')
	}
	b = append(b, p...)
	if c.chunked {
		b = append(b, '\r', '\n')
	}
	*c.pending = b
	return len(p), nil
}

// FlushError writes what Write collected, in one call. The write deadline
// is moved on only every half stallTimeout, not on every write. A failed
// write closes the connection: nothing more can be sent on it (a TLS
// connection whose write failed is broken for good), and whoever waits on
// the connection learns that the client is gone.
func (c *connWriter) FlushError() error {
	if c.pending == nil {
		return nil
	}
	if now := time.Now(); c.until.Sub(now) < stallTimeout/2 {
		c.until = now.Add(stallTimeout)
		_ = c.conn.SetWriteDeadline(c.until)
	}
	_, err := c.conn.Write(*c.pending)
	c.release()
	if err != nil {
		_ = c.raw.Close()
	}
	return err
}

// release gives the frame buffer back, unless it grew large.
func (c *connWriter) release() {
	if cap(*c.pending) <= 64<<10 {
		*c.pending = (*c.pending)[:0]
		framePool.Put(c.pending)
	}
	c.pending = nil
}

// close ends the body (with the last, empty chunk) and closes the
// connection. The last write gets a second, and so does a TLS close_notify
// after it (crypto/tls would give that one five): the stream is over either
// way, and ending many streams (reload, shutdown) must not be held up by
// clients that stopped reading.
func (c *connWriter) close() {
	if c.chunked {
		if c.pending == nil {
			c.pending = framePool.Get().(*[]byte)
		}
		*c.pending = append(*c.pending, "0\r\n\r\n"...)
	}
	c.until = time.Now().Add(time.Second)
	_ = c.conn.SetWriteDeadline(c.until)
	var err error
	if c.pending != nil {
		_, err = c.conn.Write(*c.pending)
		c.release()
	}
	if err != nil || !c.tls {
		_ = c.raw.Close()
		return
	}
	cut := time.AfterFunc(time.Second, func() { _ = c.raw.Close() })
	_ = c.conn.Close()
	cut.Stop()
}

// detachedClient stands in for the handler's writer once a stream is
// detached (see Writer.client): the response went to the connection, which
// net/http no longer serves, so there is nothing to set or write through
// it. Like net/http's response after a hijack, its writes and controls
// fail with http.ErrHijacked; its header is a map of its own that nothing
// sends.
type detachedClient struct{}

func (detachedClient) Header() http.Header              { return http.Header{} }
func (detachedClient) Write([]byte) (int, error)        { return 0, http.ErrHijacked }
func (detachedClient) WriteHeader(int)                  {}
func (detachedClient) FlushError() error                { return http.ErrHijacked }
func (detachedClient) SetReadDeadline(time.Time) error  { return http.ErrHijacked }
func (detachedClient) SetWriteDeadline(time.Time) error { return http.ErrHijacked }
func (detachedClient) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrHijacked
}
