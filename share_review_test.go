package sseproxy_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// Found in review of the shared-stream hardening: each test here failed
// before the fix it is named after.

// A backend that gives each visitor without a cookie a session of its own
// (Set-Cookie in the stream's answer) must not have that session handed
// to every cookie-less client that shares the stream: they would all log
// in as one. Only the client whose request the backend answered gets it.
func TestSharedClientsNeverGetAnotherClientsSetCookie(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var n atomic.Int32
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Add("Set-Cookie", fmt.Sprintf("sid=secret-%d; HttpOnly", n.Add(1)))
				sseHeaders(w)
				for {
					write(w, "data: tick\n\n")
					select {
					case <-time.After(20 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
				}
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n}")
			c := testcaddy.Client(t, p)
			first := testcaddy.Open(t, c, base+"/events", sseAccept)
			first.WaitFor(t, "data: tick\n\n", wait)
			if got := first.Resp.Header.Values("Set-Cookie"); len(got) != 1 || got[0] != "sid=secret-1; HttpOnly" {
				t.Errorf("the client that started the stream got Set-Cookie %q, want the backend's", got)
			}
			second := testcaddy.Open(t, c, base+"/events", sseAccept)
			second.WaitFor(t, "data: tick\n\n", wait)
			if got := second.Resp.Header.Values("Set-Cookie"); len(got) != 0 {
				t.Errorf("a client that joined got another client's Set-Cookie %q", got)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("upstream got %d requests, want 1 (the clients share)", got)
			}
		})
	}
}

// A first answer that is not a stream and breaks in the middle of its body
// (the upstream's connection drops) must not reach a shared client as a
// body that ended well: unshared, the client's response is cut off too, so
// that it can tell a truncated body from a whole one.
func TestSharedClientSeesANonStreamAnswerThatBrokeAsBroken(t *testing.T) {
	for _, p := range sharedProtos {
		t.Run(string(p), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				write(w, `{"part": "one", `)
				time.Sleep(100 * time.Millisecond)
				panic(http.ErrAbortHandler) // the connection drops mid-body
			})
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 100ms\n\treconnect_for 1s\n}")
			s := testcaddy.Open(t, testcaddy.Client(t, p), base+"/events", sseAccept)
			err := s.WaitEnd(t, wait)
			if err == io.EOF {
				t.Errorf("the client got %q as a whole body; want its response cut off", s.Bytes())
			}
		})
	}
}
