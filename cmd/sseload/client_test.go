package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runAgainst runs a short client measurement against srv.
func runAgainst(t *testing.T, url, proto string, n int) *Report {
	t.Helper()
	cfg := clientConfig{
		urls: []string{url}, n: n, proto: proto, insecure: true,
		duration: 600 * time.Millisecond, warmup: 100 * time.Millisecond, grace: 300 * time.Millisecond,
		connectTimeout: 5 * time.Second, readBuf: 512, h3PerConn: 100, pids: []int{os.Getpid()},
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	c, closeTransports, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransports()
	return c.run(context.Background())
}

func checkReport(t *testing.T, rep *Report, n int, wantEvents bool) {
	t.Helper()
	if rep.Connected != n || rep.Failed != 0 || rep.EndedEarly != 0 || len(rep.Errors) != 0 {
		t.Fatalf("streams: %+v", rep)
	}
	if rep.Gaps != 0 || rep.Dups != 0 || rep.BadEvents != 0 || rep.Delivered != rep.Expected {
		t.Fatalf("integrity: %+v", rep)
	}
	if wantEvents && (rep.Delivered == 0 || rep.Latency.Count != rep.Delivered || rep.SilentStreams != 0 || rep.UnconfirmedTails != 0) {
		t.Fatalf("no events: %+v", rep)
	}
	if rep.Process == nil || rep.Process.PSSEndKiB == 0 {
		t.Fatalf("no process report: %+v", rep)
	}
}

func TestClientAgainstUpstream(t *testing.T) {
	srv := httptest.NewServer(newUpstream(50, 200, "per-stream", 100))
	defer srv.Close()
	for _, q := range []string{"", "?mode=broadcast&rate=40", "?size=1000"} {
		rep := runAgainst(t, srv.URL+"/"+q, "h1", 20)
		checkReport(t, rep, 20, true)
		if rep.ExpectedByRate == 0 {
			t.Errorf("%s: no rate header", q)
		}
		// Every event's origin is at or before its send time, so each
		// percentile from origin is at least the one from send.
		o, l := rep.OriginLatency, rep.Latency
		if o == nil || o.Count != l.Count || o.P50us < l.P50us || o.P99us < l.P99us || o.MaxUs < l.MaxUs {
			t.Errorf("%s: origin latency %+v, latency %+v", q, o, l)
		}
	}
	// Idle streams: open, no events, nothing silent.
	rep := runAgainst(t, srv.URL+"/?rate=0", "h1", 10)
	checkReport(t, rep, 10, false)
	if rep.Delivered != 0 || rep.SilentStreams != 0 {
		t.Fatalf("idle: %+v", rep)
	}
}

func TestClientH2(t *testing.T) {
	srv := httptest.NewUnstartedServer(newUpstream(50, 100, "broadcast", 100))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	rep := runAgainst(t, srv.URL+"/", "h2", 30)
	checkReport(t, rep, 30, true)
}

func TestClientCountsFailures(t *testing.T) {
	srv := httptest.NewServer(newUpstream(50, 100, "per-stream", 3))
	defer srv.Close()
	rep := runAgainst(t, srv.URL+"/", "h1", 5)
	if rep.Connected != 3 || rep.Failed != 2 || len(rep.Errors) != 1 || rep.Errors[0].Kind != "status 503" {
		t.Fatalf("want 3 open and 2 refused with 503: %+v", rep)
	}
}

func TestUpstreamEventFormat(t *testing.T) {
	const sentNanos, originNanos = 1700000000123456789, 1700000000000000007
	for _, origin := range []int64{0, originNanos} {
		for _, size := range []int{0, 40, 256, 4096} {
			ev := appendEvent(nil, sentNanos, 42, origin, size)
			if size >= 80 && len(ev) != size {
				t.Errorf("origin %d, size %d: got %d bytes", origin, size, len(ev))
			}
			var got []Event
			p := Parser{OnEvent: func(e Event) {
				got = append(got, Event{Data: append([]byte(nil), e.Data...), LastID: append([]byte(nil), e.LastID...)})
			}}
			p.Feed(ev)
			if len(got) != 1 || string(got[0].LastID) != "42" {
				t.Fatalf("origin %d, size %d: %q parsed as %+v", origin, size, ev, got)
			}
			sent, seq, gotOrigin, hasOrigin, ok := parseStamp(got[0].Data)
			wantOrigin := origin
			if origin == 0 {
				wantOrigin = sentNanos // no field: the client falls back to the send time
			}
			if !ok || sent != sentNanos || seq != 42 || gotOrigin != wantOrigin || hasOrigin != (origin != 0) {
				t.Fatalf("origin %d, size %d: stamp %d %d %d %v %v", origin, size, sent, seq, gotOrigin, hasOrigin, ok)
			}
		}
	}
}

// TestClientOriginLatency feeds onEvent events with and without an origin
// stamp and checks both histograms: from send, and from origin.
func TestClientOriginLatency(t *testing.T) {
	c, closeTransports, err := newClient(clientConfig{urls: []string{"http://127.0.0.1:1/"}, n: 1, proto: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransports()
	c.winStart.Store(1000)
	c.winEnd.Store(100_000)
	var st streamStat
	// Sent at 2000, its tick made at 1000, received at 5000.
	c.onEvent(&st, 5000, []byte("2000 1 o1000 xxxx"))
	// No origin field: from origin is from send, 3000.
	c.onEvent(&st, 6000, []byte("3000 2 xxxx"))
	// Sent before the window although its tick is older still: not counted.
	c.onEvent(&st, 6000, []byte("900 3 o500 xxxx"))
	if st.bad != 0 || st.inWin != 2 || c.hist.Count() != 2 || c.fromOrigin.Count() != 2 {
		t.Fatalf("bad %d, in window %d, counted %d and %d", st.bad, st.inWin, c.hist.Count(), c.fromOrigin.Count())
	}
	if c.hist.Max() != 3000 || c.hist.Mean() != 3000 {
		t.Errorf("from send: max %d mean %g, want 3000 and 3000", c.hist.Max(), c.hist.Mean())
	}
	if c.fromOrigin.Max() != 4000 || c.fromOrigin.Mean() != 3500 {
		t.Errorf("from origin: max %d mean %g, want 4000 and 3500", c.fromOrigin.Max(), c.fromOrigin.Mean())
	}
	rep := &Report{}
	c.summarize(rep, nil)
	if rep.OriginLatency == nil || rep.OriginLatency.Count != 2 || rep.OriginLatency.MaxUs != 4 {
		t.Errorf("report: %+v", rep.OriginLatency)
	}
	var empty client
	rep = &Report{}
	empty.summarize(rep, nil)
	if rep.OriginLatency != nil {
		t.Errorf("no events, but origin latency %+v", rep.OriginLatency)
	}
}

func TestUpstreamRejectsBadParams(t *testing.T) {
	u := newUpstream(1, 10, "per-stream", 10)
	for _, q := range []string{"rate=-1", "rate=x", "size=99999999", "mode=fast"} {
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?"+q, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d", q, rec.Code)
		}
	}
}

func TestClientConfigLimits(t *testing.T) {
	ok := clientConfig{urls: []string{"http://127.0.0.1:1/"}, n: 10, duration: time.Second, proto: "h1",
		connectTimeout: time.Second, readBuf: 4096, h3PerConn: 100}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*clientConfig){
		"too many streams":  func(c *clientConfig) { c.n = maxStreams + 1 },
		"too long":          func(c *clientConfig) { c.duration = maxRunDuration + time.Second },
		"bad proto":         func(c *clientConfig) { c.proto = "spdy" },
		"h3 without TLS":    func(c *clientConfig) { c.proto = "h3" },
		"bad url":           func(c *clientConfig) { c.urls = []string{"ftp://x"} },
		"h2 groups over h1": func(c *clientConfig) { c.h2PerConn = 1 },
		"negative h2 group": func(c *clientConfig) { c.proto, c.h2PerConn = "h2", -1 },
	} {
		c := ok
		mut(&c)
		if c.validate() == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// The client asks for an event stream like EventSource does: sse_proxy
// shares and relays only requests with Accept: text/event-stream.
func TestClientSendsEventStreamAccept(t *testing.T) {
	u := newUpstream(50, 100, "broadcast", 100)
	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Accept") != "text/event-stream" {
			bad.Add(1)
		}
		u.ServeHTTP(w, r)
	}))
	defer srv.Close()
	checkReport(t, runAgainst(t, srv.URL+"/", "h1", 3), 3, true)
	if bad.Load() != 0 {
		t.Fatalf("%d requests without GET + Accept: text/event-stream", bad.Load())
	}
}

func TestClientReportsUpstreamStreams(t *testing.T) {
	srv := httptest.NewServer(newUpstream(50, 100, "broadcast", 100))
	defer srv.Close()
	cfg := clientConfig{
		urls: []string{srv.URL + "/"}, n: 7, proto: "h1", upstreamHealth: srv.URL + "/healthz",
		duration: 300 * time.Millisecond, grace: 300 * time.Millisecond,
		connectTimeout: 5 * time.Second, readBuf: 512, h3PerConn: 100,
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	c, closeTransports, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransports()
	rep := c.run(context.Background())
	if rep.UpstreamStreams == nil || *rep.UpstreamStreams != 7 {
		t.Fatalf("upstream streams %v, want 7 (warnings %v)", rep.UpstreamStreams, rep.Warnings)
	}
	if _, err := upstreamStreams(context.Background(), srv.URL+"/?rate=200&x=/healthz"); err == nil {
		t.Error("an event stream passed for /healthz")
	}
}

func TestOpenFilesNeeded(t *testing.T) {
	for _, c := range []struct {
		proto string
		n     int
		want  uint64
		perH2 int
	}{{"h1", 1000, 1050, 0}, {"h2", 20000, 250, 0}, {"h2", 1, 51, 0}, {"h3", 1000, 60, 0},
		{"h2", 8000, 8050, 1}, {"h2", 1000, 150, 10}, {"h2", 1000, 60, 500}} {
		cfg := clientConfig{proto: c.proto, n: c.n, h3PerConn: 100, h2PerConn: c.perH2}
		if got := cfg.openFilesNeeded(); got != c.want {
			t.Errorf("%s × %d: %d, want %d", c.proto, c.n, got, c.want)
		}
	}
}

// -h2-streams-per-conn spreads HTTP/2 streams over one connection per group
// of N streams; without it they share one connection (the server allows 250
// streams per connection). A real TLS HTTP/2 server counts the connections
// that carried a stream.
func TestClientH2StreamsPerConn(t *testing.T) {
	u := newUpstream(50, 100, "broadcast", 100)
	var mu sync.Mutex // guards conns
	conns := map[string]int{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
		u.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	for _, c := range []struct{ n, perConn, wantConns int }{{12, 0, 1}, {12, 1, 12}, {12, 4, 3}, {10, 4, 3}} {
		mu.Lock()
		clear(conns)
		mu.Unlock()
		cfg := clientConfig{
			urls: []string{srv.URL + "/"}, n: c.n, proto: "h2", insecure: true, h2PerConn: c.perConn,
			duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, grace: 300 * time.Millisecond,
			connectTimeout: 5 * time.Second, readBuf: 512, h3PerConn: 100, pids: []int{os.Getpid()},
		}
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
		cl, closeTransports, err := newClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep := cl.run(context.Background())
		closeTransports()
		checkReport(t, rep, c.n, true)
		mu.Lock()
		got, streams := len(conns), 0
		for _, k := range conns {
			streams += k
		}
		mu.Unlock()
		if got != c.wantConns || streams != c.n {
			t.Errorf("%d streams, %d per connection: %d streams over %d connections, want %d connections", c.n, c.perConn, streams, got, c.wantConns)
		}
	}
}

// Errors are counted by kind: an HTTP/2 stream error's kind does not name
// its stream, so a proxy resetting 500 streams is one kind, not 500.
func TestErrKind(t *testing.T) {
	for _, c := range []struct{ err, want string }{
		{"stream error: stream ID 101; INTERNAL_ERROR; received from peer", "HTTP/2 stream error: INTERNAL_ERROR; received from peer"},
		{"read tcp 127.0.0.1:5000->127.0.0.1:6000: read: connection reset by peer", "connection reset by peer"},
		{"unexpected EOF", "unexpected EOF"},
		{"x: stream ID abc; y", "stream ID abc; y"},
	} {
		if got := errKind(errors.New(c.err)); got != c.want {
			t.Errorf("errKind(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}
