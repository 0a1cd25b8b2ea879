package sseproxy_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// rotatingSession is a backend that sets a session cookie on a first visit
// and rotates it on every visit after, ending each response so that the
// proxy comes back, until the fourth session: then it holds the stream.
// The session a request carries is read by session (from the Cookie or
// from an auth header); its value is "<user>.<n>", user being the client's
// own "user" cookie. It records each request's Cookie field and session.
type rotatingSession struct {
	session func(r *http.Request) string
	mu      sync.Mutex
	seen    []visit
}

type visit struct{ user, cookie, session string }

func (b *rotatingSession) handler(w http.ResponseWriter, r *http.Request) {
	user := ""
	if c, err := r.Cookie("user"); err == nil {
		user = c.Value
	}
	got := b.session(r)
	b.mu.Lock()
	b.seen = append(b.seen, visit{user, r.Header.Get("Cookie"), got})
	b.mu.Unlock()
	n := 0
	if got != "" {
		n, _ = strconv.Atoi(strings.TrimPrefix(got, user+"."))
	}
	http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprintf("%s.%d", user, n+1), Path: "/", Secure: true, HttpOnly: true})
	sseHeaders(w)
	if got == "" {
		write(w, "data: first visit\n\n")
	} else {
		write(w, "data: back with "+got+"\n\n")
	}
	if n >= 3 {
		<-r.Context().Done()
	}
}

func (b *rotatingSession) visits() []visit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]visit(nil), b.seen...)
}

func TestReconnectCarriesTheCookiesTheUpstreamSet(t *testing.T) {
	for _, mode := range []struct {
		name, config string
	}{
		{"plain", ""},
		{"shared", "\tshare\n\tshare_linger 50ms\n"},
	} {
		for _, cred := range []struct {
			name, config, first string
			session             func(r *http.Request) string
		}{
			{"cookie", "", "", func(r *http.Request) string {
				if c, err := r.Cookie("session"); err == nil {
					return c.Value
				}
				return ""
			}},
			{"auth_header", "\tauth_header Authorization \"Bearer {cookie.session}\"\n", ".0", func(r *http.Request) string {
				return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			}},
		} {
			t.Run(mode.name+"/"+cred.name, func(t *testing.T) {
				testcaddy.LeakCheck(t)
				b := &rotatingSession{session: cred.session}
				up := newUpstream(t, b.handler)
				base := startSite(t, "sse_proxy "+up.addr()+" {\n\treconnect 50ms 200ms\n"+mode.config+cred.config+"}")
				c := testcaddy.Client(t, testcaddy.H2)
				// Two users at once: neither's cookies reach the other's
				// upstream request.
				streams := map[string]*testcaddy.Stream{}
				for _, user := range []string{"ann", "bob"} {
					cookie := "theme=dark; user=" + user
					if cred.first != "" {
						cookie += "; session=" + user + cred.first
					}
					streams[user] = testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Cookie": {cookie}})
				}
				for user, s := range streams {
					first := "data: first visit\n\n"
					if cred.first != "" {
						first = "data: back with " + user + ".0\n\n"
					}
					s.WaitFor(t, first, wait)
					for n := 1; n <= 3; n++ {
						s.WaitFor(t, fmt.Sprintf("%sdata: back with %s.%d\n\n", first, user, n), wait)
						first = ""
					}
					// The first answer's cookie reached the browser too.
					if got := s.Resp.Header.Get("Set-Cookie"); !strings.HasPrefix(got, "session="+user+".") {
						t.Errorf("%s: Set-Cookie %q", user, got)
					}
					if bytes.Contains(s.Bytes(), []byte("first visit\n\ndata: first visit")) {
						t.Errorf("%s: the upstream saw a first visit twice: %q", user, s.Bytes())
					}
				}
				for _, v := range b.visits() {
					if !strings.Contains(v.cookie, "theme=dark") || !strings.Contains(v.cookie, "user="+v.user) {
						t.Errorf("the client's own cookies are missing: %+v", v)
					}
					if v.session != "" && !strings.HasPrefix(v.session, v.user+".") {
						t.Errorf("another user's session reached %s's request: %+v", v.user, v)
					}
					if strings.Count(v.cookie, "session=") > 1 {
						t.Errorf("two sessions sent: %+v", v)
					}
				}
			})
		}
	}
}

// TestReconnectWaitsForTheUpstreamsRetry: an upstream that sends retry:
// and ends is asked again no sooner than that (and within the configured
// longest wait).
func TestReconnectWaitsForTheUpstreamsRetry(t *testing.T) {
	for _, c := range []struct {
		retry, max, atLeast, atMost time.Duration
	}{
		{3 * time.Second, 5 * time.Second, 3 * time.Second, 5 * time.Second},
		{60 * time.Second, time.Second, time.Second, time.Second}, // capped by max
	} {
		t.Run(c.retry.String(), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			var mu sync.Mutex
			var times []time.Time // end of the first response, start of the second
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n := len(times)
				if n == 1 {
					times = append(times, time.Now())
				}
				mu.Unlock()
				sseHeaders(w)
				if n == 0 {
					write(w, fmt.Sprintf("retry: %d\ndata: 1\n\n", c.retry.Milliseconds()))
					mu.Lock()
					times = append(times, time.Now())
					mu.Unlock()
					return
				}
				write(w, "data: 2\n\n")
				<-r.Context().Done()
			})
			base := startSite(t, fmt.Sprintf("sse_proxy %s {\n\treconnect 100ms %s\n}", up.addr(), c.max))
			s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), base+"/events", http.Header{"Accept": {"text/event-stream"}})
			s.WaitFor(t, "data: 2\n\n", wait+c.atMost)
			mu.Lock()
			waited := times[1].Sub(times[0])
			mu.Unlock()
			t.Logf("upstream retry %v, max %v: the proxy came back after %v", c.retry, c.max, waited)
			if waited < c.atLeast || waited > c.atMost+2*time.Second {
				t.Errorf("came back after %v, want %v to %v", waited, c.atLeast, c.atMost)
			}
		})
	}
}

// bomUpstream serves the BOM cases by path; /reconnect ends its first
// response and holds the second.
func bomUpstream() http.HandlerFunc {
	const bom = "\ufeff"
	var mu sync.Mutex
	visits := map[string]int{}
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		visits[r.URL.Path]++
		n := visits[r.URL.Path]
		mu.Unlock()
		switch r.URL.Path {
		case "/one":
			script(bom+"data: 1\n\n")(w, r)
		case "/two":
			script(bom+bom+"data: 1\n\ndata: 2\n\n")(w, r)
		case "/split":
			script("\xef", 20*time.Millisecond, "\xbb", 20*time.Millisecond, "\xbf\xef\xbb", 20*time.Millisecond, "\xbfdata: 1\n\ndata: 2\n\n")(w, r)
		case "/reconnect":
			if n == 1 {
				sseHeaders(w)
				write(w, bom+"data: 1\n\n")
				return
			}
			script(bom+bom+"data: 2\n\ndata: 3\n\n")(w, r)
		}
	}
}

// TestUpstreamBOMReachesTheClientByteForByte: one BOM from the start of
// each upstream response is what a browser strips; the client's body
// carries exactly what keeps its view the same.
func TestUpstreamBOMReachesTheClientByteForByte(t *testing.T) {
	const bom = "\ufeff"
	for _, c := range []struct {
		config, prefix, first string
	}{
		{"", "", bom},                         // nothing before the BOM: passed through
		{"\tretry 1s\n", "retry: 1000\n", ""}, // after the proxy's retry: dropped
	} {
		t.Run(fmt.Sprintf("retry=%v", c.prefix != ""), func(t *testing.T) {
			testcaddy.LeakCheck(t)
			up := newUpstream(t, bomUpstream())
			base := startSite(t, "sse_proxy "+up.addr()+" {\n\theartbeat off\n\treconnect 50ms 100ms\n"+c.config+"}")
			cl := testcaddy.Client(t, testcaddy.H1)
			for path, want := range map[string]string{
				"/one":       c.prefix + c.first + "data: 1\n\n",
				"/two":       c.prefix + c.first + bom + "data: 1\n\ndata: 2\n\n",
				"/split":     c.prefix + c.first + bom + "data: 1\n\ndata: 2\n\n",
				"/reconnect": c.prefix + c.first + "data: 1\n\n" + bom + "data: 2\n\ndata: 3\n\n",
			} {
				s := testcaddy.Open(t, cl, base+path, http.Header{"Accept": {"text/event-stream"}})
				s.Wait(wait, func(b []byte, _ error) bool { return len(b) >= len(want) })
				time.Sleep(50 * time.Millisecond) // nothing more may follow
				if got := string(s.Bytes()); got != want {
					t.Errorf("%s: client got %q, want %q", path, got, want)
				}
				s.Close()
			}
		})
	}
}

// TestSharedStreamReadsTheIDBehindALeadingBOM: a shared stream passes the
// upstream's leading BOM on to its clients, and still knows the first
// event's id, so a client resumes after it from the replay buffer.
func TestSharedStreamReadsTheIDBehindALeadingBOM(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("\ufeffid: 1\ndata: 1\n\n", "id: 2\ndata: 2\n\n"))
	base := startSite(t, "sse_proxy "+up.addr()+" {\n\tshare\n\tshare_linger 50ms\n\theartbeat off\n}")
	c := testcaddy.Client(t, testcaddy.H2)
	first := testcaddy.Open(t, c, base+"/events", sseAccept)
	first.WaitFor(t, "\ufeffid: 1\ndata: 1\n\nid: 2\ndata: 2\n\n", wait)
	resumed := testcaddy.Open(t, c, base+"/events", http.Header{"Accept": {"text/event-stream"}, "Last-Event-Id": {"1"}})
	resumed.WaitFor(t, "id: 2\ndata: 2\n\n", wait)
	if got := string(resumed.Bytes()); got != "id: 2\ndata: 2\n\n" {
		t.Errorf("resumed client got %q", got)
	}
}
