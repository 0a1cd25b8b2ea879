package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
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
	w.Detach(server, true)
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
	w.Detach(server, false) // HTTP/1.0: the body runs to the close
	forceTick(w, rec)
	w.Abort(ReasonEvicted)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(client)
	if err != nil || string(raw) != ":\n\n" {
		t.Fatalf("on the wire %q (%v), want one heartbeat, then the close", raw, err)
	}
	if got := rec.body(); got != "" {
		t.Fatalf("the detached stream still wrote %q to the old writer", got)
	}
}

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
	w.Detach(conn, true)
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
