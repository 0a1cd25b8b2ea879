package share

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// conn is a stand-in for net/http's own response: it can hand its
// connection over.
type conn struct{ http.ResponseWriter }

func (conn) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, nil }

// wrapper is a pass-through middleware writer, like Caddy's recorder; it
// can hijack too (through to what it wraps), and may be buffering.
type wrapper struct {
	http.ResponseWriter
	buffered bool
}

func (w wrapper) Unwrap() http.ResponseWriter                { return w.ResponseWriter }
func (w wrapper) Buffered() bool                             { return w.buffered }
func (wrapper) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, nil }

func TestInnermostHijackerPassesWrappersByUnlessTheyHoldTheResponse(t *testing.T) {
	inner := conn{}
	if got, buffered := innermostHijacker(wrapper{ResponseWriter: wrapper{ResponseWriter: inner}}); got != inner || buffered {
		t.Errorf("through two recorders: got %T (buffered %v), want net/http's own", got, buffered)
	}
	if _, buffered := innermostHijacker(wrapper{ResponseWriter: wrapper{ResponseWriter: inner, buffered: true}}); !buffered {
		t.Errorf("through a buffering recorder: not reported as buffered")
	}
	outer := proxy.NewWriter(inner, &proxy.Options{}, "", func() {})
	if got, _ := innermostHijacker(wrapper{ResponseWriter: outer}); got != nil {
		t.Errorf("under another sse_proxy's writer: got %T, want none", got)
	}
	if got, _ := innermostHijacker(httptest.NewRecorder()); got != nil {
		t.Errorf("nothing to hijack: got %T", got)
	}
}
