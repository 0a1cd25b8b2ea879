package share

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// sinkFor returns a sink of a hub (not registered, with no upstream) that
// holds events up to max bytes, and a client subscribed to it.
func sinkFor(t *testing.T, max int) (*sink, *Sub) {
	t.Helper()
	cfg := &Config{
		Replay:       buffer.ReplayLimits{MaxEvents: 100, MaxBytes: 1 << 20},
		ClientBuffer: 1 << 20,
		MaxEventSize: max,
		Logger:       zap.NewNop(),
	}
	h := newHub("test", cfg)
	t.Cleanup(h.cancel)
	s := &sink{hub: h, header: http.Header{"Content-Type": {"text/event-stream"}}}
	sub := h.subscribe("")
	s.WriteHeader(http.StatusOK)
	return s, sub
}

// What the client gets for the upstream's bytes, written in the given
// pieces: an event over the limit is cut (its id alone in its place) in
// whatever pieces it comes, and blank lines between events, however many,
// cut nothing.
func TestSinkCutsEventsOverMaxEventSize(t *testing.T) {
	big := "data: " + strings.Repeat("x", 100) + "\n"
	for name, tc := range map[string]struct {
		writes []string
		want   string
	}{
		"whole, in one write": {
			[]string{"id: 1\ndata: a\n\nid: 2\n" + big + "\nid: 3\ndata: c\n\n"},
			"id: 1\ndata: a\n\nid: 2\n\nid: 3\ndata: c\n\n",
		},
		"in pieces": {
			[]string{"id: 1\ndata: a\n\nid: 2\n", big[:50], big[50:], "\n", "data: c\n\n"},
			"id: 1\ndata: a\n\nid: 2\n\ndata: c\n\n",
		},
		"without an id of its own": {
			[]string{"id: 1\ndata: a\n\n", big, "\ndata: c\n\n"},
			"id: 1\ndata: a\n\ndata: c\n\n",
		},
		"blank lines between events": {
			[]string{"data: a\n\n", strings.Repeat("\n", 40), strings.Repeat("\r\n", 40), "data: c\n\n"},
			"data: a\n\ndata: c\n\n",
		},
		"at the limit": {
			[]string{"data: " + strings.Repeat("y", 58) + "\n\n"},
			"data: " + strings.Repeat("y", 58) + "\n\n",
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, sub := sinkFor(t, 66)
			for _, w := range tc.writes {
				if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			batch, _, _ := sub.Take()
			if got := string(batch); got != tc.want {
				t.Errorf("client got %q, want %q", got, tc.want)
			}
		})
	}
}

// The next upstream response starts afresh: an event the last one left
// incomplete is dropped.
func TestSinkRestartDropsAnIncompleteEvent(t *testing.T) {
	s, sub := sinkFor(t, 1<<10)
	_, _ = s.Write([]byte("id: 1\ndata: a\n\ndata: half"))
	s.restart()
	_, _ = s.Write([]byte("data: b\n\n"))
	batch, _, _ := sub.Take()
	if got, want := string(batch), "id: 1\ndata: a\n\ndata: b\n\n"; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
}
