package testcaddy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Stream is a response body read in the background, so that a test can
// wait for bytes with a deadline instead of blocking in Read.
type Stream struct {
	// Resp is the response; its body belongs to the Stream.
	Resp *http.Response

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	buf     []byte
	err     error // io.EOF on a clean end
	changed chan struct{}
}

// Open sends a GET for url with header and starts reading the answer. The
// request is cancelled and the reader stopped when the test ends.
func Open(t testing.TB, c *http.Client, url string, header http.Header) *Stream {
	t.Helper()
	s, err := OpenErr(c, url, header)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// OpenErr is Open for use outside the test's goroutine: it returns the
// error, and the caller must Close the stream.
func OpenErr(c *http.Client, url string, header http.Header) (*Stream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	s := &Stream{Resp: resp, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *Stream) read() {
	defer close(s.done)
	b := make([]byte, 32*1024)
	for {
		n, err := s.Resp.Body.Read(b)
		s.mu.Lock()
		s.buf = append(s.buf, b[:n]...)
		if err != nil {
			s.err = err
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Close cancels the request and waits for the reader to stop.
func (s *Stream) Close() {
	s.cancel()
	s.Resp.Body.Close()
	<-s.done
}

// Bytes returns a copy of everything received so far.
func (s *Stream) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf)
}

// BytesFrom returns a copy of what was received after the first off bytes.
func (s *Stream) BytesFrom(off int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off >= len(s.buf) {
		return nil
	}
	return bytes.Clone(s.buf[off:])
}

// Wait blocks until cond holds for the bytes received so far and the
// stream's end state (nil while open), or until timeout. It reports whether
// cond held.
func (s *Stream) Wait(timeout time.Duration, cond func(b []byte, err error) bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond(s.buf, s.err)
		ch := s.changed
		ended := s.err != nil
		s.mu.Unlock()
		if ok {
			return true
		}
		if ended {
			return false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// WaitFor waits until the received bytes contain sub, failing the test
// after timeout.
func (s *Stream) WaitFor(t testing.TB, sub string, timeout time.Duration) {
	t.Helper()
	if !s.Wait(timeout, func(b []byte, _ error) bool { return bytes.Contains(b, []byte(sub)) }) {
		t.Fatalf("stream: %q not received within %v; got %q (end: %v)", sub, timeout, s.Bytes(), s.Err())
	}
}

// WaitEnd waits for the stream to end and returns how: io.EOF for a clean
// end, another error for an abort. It fails the test after timeout.
func (s *Stream) WaitEnd(t testing.TB, timeout time.Duration) error {
	t.Helper()
	if !s.Wait(timeout, func(_ []byte, err error) bool { return err != nil }) {
		t.Fatalf("stream still open after %v; got %q", timeout, s.Bytes())
	}
	return s.Err()
}

// Err is how the stream ended, or nil while it is open.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Event is one dispatched event, as an EventSource would see it.
type Event struct {
	Type, Data, ID string
}

// ParseEvents parses a text/event-stream the way the HTML standard's
// EventSource does (CRLF, LF and CR line ends; comments ignored; data lines
// joined with LF; an event without data is not dispatched). It also returns
// the comment lines and the last retry value (-1 if none). Bytes after the
// last empty line are an incomplete event and are not dispatched.
func ParseEvents(b []byte) (events []Event, comments []string, retry int) {
	retry = -1
	text := strings.TrimPrefix(string(b), "\ufeff")
	var data strings.Builder
	var typ, id string
	hasData := false
	for len(text) > 0 {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			break // an unterminated line: not yet a line at all
		}
		line := text[:i]
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
		if line == "" {
			if hasData {
				events = append(events, Event{Type: typ, Data: strings.TrimSuffix(data.String(), "\n"), ID: id})
			}
			data.Reset()
			typ, hasData = "", false
			continue
		}
		if strings.HasPrefix(line, ":") {
			comments = append(comments, line)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			typ = value
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		case "retry":
			n := 0
			for _, c := range value {
				if c < '0' || c > '9' {
					n = -1
					break
				}
				n = n*10 + int(c-'0')
			}
			if n >= 0 && value != "" {
				retry = n
			}
		}
	}
	return events, comments, retry
}

// StripHeartbeats removes the proxy's heartbeat lines (":\n", a comment
// line with no text) from b: a ":\n" at the start of b or of a line (after
// LF or CR). A ":\n" that ends a field's line stays.
func StripHeartbeats(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == ':' && i+1 < len(b) && b[i+1] == '\n' && (i == 0 || b[i-1] == '\n' || b[i-1] == '\r') {
			i++
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// Drain reads r to the end, for upstream handlers that ignore bodies.
func Drain(r io.Reader) { _, _ = io.Copy(io.Discard, r) }
