package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// loopback returns both ends of a TCP connection on 127.0.0.1.
func loopback(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestDetachedStreamWritesChunksAndEndsTheBody(t *testing.T) {
	server, client := loopback(t)
	w, _, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
	if _, err := w.Detach(func() (net.Conn, error) { return server, nil }, true); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"data: one\n\n", "id: 2\ndata: two\n\n"} {
		if _, err := w.Write([]byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	w.End([]byte("retry: 1000\n\n"), time.Second, ReasonShutdown)
	if !w.Ended() {
		t.Fatal("End at a boundary did not end the stream")
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(client) // the end closed the connection
	if err != nil {
		t.Fatal(err)
	}
	want := "b\r\ndata: one\n\n\r\n11\r\nid: 2\ndata: two\n\n\r\nd\r\nretry: 1000\n\n\r\n0\r\n\r\n"
	if string(raw) != want {
		t.Fatalf("on the wire %q, want %q", raw, want)
	}
	// The same bytes, read as a chunked body, are the stream.
	body, err := io.ReadAll(httputil.NewChunkedReader(strings.NewReader(string(raw))))
	if err != nil || string(body) != "data: one\n\nid: 2\ndata: two\n\nretry: 1000\n\n" {
		t.Fatalf("chunked body %q, %v", body, err)
	}
	// Close is the handler's and does nothing to a detached stream; Release
	// unregisters it.
	w.Close()
	w.Release()
}

func TestDetachedHeartbeatIsOneWrite(t *testing.T) {
	server, client := loopback(t)
	w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
	// HTTP/1.0: the body runs to the close.
	if _, err := w.Detach(func() (net.Conn, error) { return server, nil }, false); err != nil {
		t.Fatal(err)
	}
	forceTick(w, rec)
	w.Abort(ReasonEvicted)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(client)
	if err != nil || string(raw) != ":\n" {
		t.Fatalf("on the wire %q (%v), want one heartbeat, then the close", raw, err)
	}
	if got := rec.body(); got != "" {
		t.Fatalf("the detached stream still wrote %q to the old writer", got)
	}
}

// A stream that is ending or ended, or whose header did not go out, stays
// where it is: its connection is not taken over.
func TestDetachRefusesAStreamThatCannotGoOn(t *testing.T) {
	hijack := func() (net.Conn, error) {
		t.Fatal("hijack called for a stream that cannot be detached")
		return nil, nil
	}
	ended, _, _ := startStream(t, &Options{}, nil)
	ended.End([]byte("retry: 1000\n\n"), time.Second, ReasonShutdown)
	if _, err := ended.Detach(hijack, true); err != ErrNotDetachable {
		t.Errorf("ended stream: %v, want ErrNotDetachable", err)
	}
	ending, _, _ := startStream(t, &Options{}, nil)
	_, _ = ending.Write([]byte("data: half"))
	ending.End(nil, time.Hour, ReasonShutdown) // waits for the boundary
	if _, err := ending.Detach(hijack, true); err != ErrNotDetachable {
		t.Errorf("ending stream: %v, want ErrNotDetachable", err)
	}
	broken := NewWriter(&failingFlusher{nopWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}}, &Options{}, "", func() {})
	broken.WriteHeader(http.StatusOK)
	defer broken.Close()
	if _, err := broken.Detach(hijack, true); err != ErrNotDetachable {
		t.Errorf("stream whose header failed: %v, want ErrNotDetachable", err)
	}
}

type failingFlusher struct{ nopWriter }

func (f *failingFlusher) FlushError() error { return io.ErrClosedPipe }

// End from another goroutine (a max_age timer, a reload) while the stream
// is being detached either ends it before (and it stays) or after (and its
// connection closes); it never writes to net/http's response once the
// connection was taken. Run with -race.
func TestEndRacingDetachClosesTheConnectionOrKeepsTheStream(t *testing.T) {
	for i := 0; i < 200; i++ {
		server, client := loopback(t)
		w, _, _ := startStream(t, &Options{}, nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.End([]byte("retry: 1000\n\n"), time.Second, ReasonMaxAge)
		}()
		hijacked := false
		_, err := w.Detach(func() (net.Conn, error) { hijacked = true; return server, nil }, true)
		<-done
		if err == nil {
			// Detached first: the End after it closed the connection.
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			raw, err := io.ReadAll(client)
			if err != nil || !strings.HasSuffix(string(raw), "0\r\n\r\n") {
				t.Fatalf("detached, then ended: %q, %v; want the last chunk and the close", raw, err)
			}
			w.Release()
		} else if hijacked {
			t.Fatal("refused after hijacking")
		}
		server.Close()
		client.Close()
	}
}

// A write that fails on a detached stream closes its connection, so that
// whoever waits on the connection learns that the client is gone even when
// nothing more is ever written (a quiet stream, a later End that finds the
// stream closed).
func TestFailedDetachedWriteClosesTheConnection(t *testing.T) {
	server, _ := loopback(t)
	stuck := &stuckConn{Conn: server}
	w, _, _ := startStream(t, &Options{Heartbeat: time.Hour}, nil)
	if _, err := w.Detach(func() (net.Conn, error) { return stuck, nil }, true); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data: x\n\n")); err == nil {
		t.Fatal("write to a stuck connection succeeded")
	}
	// The raw connection (here: the same) was closed: reading it fails.
	_ = server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("connection still open after a failed write: read gives %v", err)
	}
	w.Release()
}

// stuckConn is a connection whose writes time out.
type stuckConn struct{ net.Conn }

func (c *stuckConn) Write([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

func TestCloseConnectionIsInTheStreamHeader(t *testing.T) {
	rec := newRecorder()
	w := NewWriter(rec, &Options{}, "", func() {})
	defer w.Close()
	w.CloseConnection()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	if got := rec.header.Values("Connection"); len(got) != 1 || got[0] != "close" {
		t.Fatalf("Connection %q, want only close", got)
	}
}

func BenchmarkDetachedRelay(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, bufio.NewReader(c))
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	w := NewWriter(&nopWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}, &Options{Heartbeat: time.Hour}, "", func() {})
	w.WriteHeader(http.StatusOK)
	if _, err := w.Detach(func() (net.Conn, error) { return conn, nil }, true); err != nil {
		b.Fatal(err)
	}
	ev := []byte("id: 1\ndata: " + strings.Repeat("x", 240) + "\n\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if _, err := w.Write(ev); err != nil {
			b.Fatal(err)
		}
	}
	w.Release()
}

// Header and Unwrap give the writer the handler got until Detach, and a
// stand-in from then on: calling them while the stream is being detached
// is no data race, and gives one or the other. Run with -race.
func TestHeaderAndUnwrapRacingDetach(t *testing.T) {
	server, _ := loopback(t)
	w, rec, _ := startStream(t, &Options{}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			u := w.Unwrap()
			if w.Header() == nil || (u != http.ResponseWriter(rec) && u != http.ResponseWriter(detachedClient{})) {
				t.Error("Header or Unwrap gave neither the handler's writer nor the stand-in")
				return
			}
		}
	}()
	if _, err := w.Detach(func() (net.Conn, error) { return server, nil }, true); err != nil {
		t.Fatal(err)
	}
	<-done
	if w.Unwrap() != http.ResponseWriter(detachedClient{}) {
		t.Error("a detached stream's writer still gives the handler's writer")
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now()); !errors.Is(err, http.ErrHijacked) {
		t.Errorf("a detached stream's response controller: %v, want http.ErrHijacked", err)
	}
	w.Release()
}

// A detached stream keeps nothing of the handler's writer: net/http's
// response holds the connection's buffers (8 KiB for an HTTP/1.1 one),
// which a stream served on the connection must not keep for its life.
func TestDetachLetsGoOfTheHandlersWriter(t *testing.T) {
	server, _ := loopback(t)
	rec := &nopWriter{h: http.Header{"Content-Type": {"text/event-stream"}}}
	collected := make(chan struct{})
	runtime.SetFinalizer(rec, func(*nopWriter) { close(collected) })
	w := NewWriter(rec, &Options{Heartbeat: time.Hour}, "", func() {})
	w.WriteHeader(http.StatusOK)
	rec = nil
	if _, err := w.Detach(func() (net.Conn, error) { return server, nil }, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			if _, err := w.Write([]byte("data: still here\n\n")); err != nil {
				t.Fatalf("write after the handler's writer was collected: %v", err)
			}
			w.Release()
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the detached stream still holds the handler's writer")
		}
	}
}
