package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// clientConfig holds the client's flags.
type clientConfig struct {
	urls           []string // streams are spread over these round-robin
	n              int
	duration       time.Duration
	ramp           time.Duration
	warmup         time.Duration
	grace          time.Duration
	connectTimeout time.Duration
	proto          string
	insecure       bool
	jsonOut        bool
	pids           []int  // processes whose CPU and memory are sampled around the window
	redis          string // a redis-server whose CPU and commands are sampled around the window
	readBuf        int
	h3PerConn      int
	h2PerConn      int    // with -proto h2: streams per connection group; 0 packs them as the server allows
	upstreamHealth string // an sseload upstream's /healthz, sampled at the window's end
}

// client runs one measurement. Fields shared by stream goroutines are atomic.
type client struct {
	cfg  clientConfig
	rt   func(i int) http.RoundTripper
	hist Histogram // receive time − send time of the events sent inside the window
	// fromOrigin is receive time − origin time (when the broadcast tick was
	// made, or the send time if the event does not say) of the same events.
	fromOrigin Histogram

	received   atomic.Uint64   // events received, any time
	receivedBy []atomic.Uint64 // the same per URL
	expecting  atomic.Int64    // open streams on which the upstream announced events
	confirmed  atomic.Int64    // of those, streams that received an event sent after the window
	negative   atomic.Uint64   // events whose send time is after their receive time
	connected  atomic.Int64
	settled    atomic.Int64
	allSettle  chan struct{}

	// The measured window, in unix nanoseconds; events count when their send
	// time falls inside it. Both are MaxInt64 until set.
	winStart, winEnd atomic.Int64
}

// streamStat is one stream's tally, owned by its goroutine until it ends.
type streamStat struct {
	url        int // index into the config's URLs
	connected  bool
	failKind   string // why the stream failed or ended early, "" if it did not
	failMsg    string
	endedEarly bool
	rate       float64 // the X-Sseload-Rate the upstream announced, -1 if absent

	events   uint64 // all events
	comments uint64
	bad      uint64 // events whose data is not "SENDNANOS SEQ [oORIGINNANOS] ..."
	prevSeq  uint64
	gaps     uint64 // sequence numbers skipped
	dups     uint64 // sequence numbers repeated or going backwards

	confirmed       bool   // received an event sent after the window: all earlier ones are in
	inWin           uint64 // events sent inside the window
	firstWin        uint64 // lowest sequence number sent inside the window
	lastWin         uint64 // highest sequence number sent inside the window
	sawWindowEvents bool
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	var cfg clientConfig
	fs.Var((*urlList)(&cfg.urls), "url", "stream `URL` (http:// or https://); give it more than once to spread the streams over several URLs round-robin")
	fs.IntVar(&cfg.n, "n", 100, fmt.Sprintf("number of concurrent streams (max %d)", maxStreams))
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of the measured window (max 10m)")
	fs.DurationVar(&cfg.ramp, "ramp", time.Second, "spread stream opening over this long (max 5m)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "wait this long after the streams are open before measuring (max 1m)")
	fs.DurationVar(&cfg.grace, "grace", 5*time.Second, "after the window, wait at most this long for every stream to get an event sent after it")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 30*time.Second, "give up on streams not open this long after the ramp")
	fs.StringVar(&cfg.proto, "proto", "h1", "h1, h2 (TLS, or h2c for http:// URLs) or h3 (QUIC)")
	fs.BoolVar(&cfg.insecure, "insecure", false, "do not verify the server's TLS certificate")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the report as JSON")
	fs.Var((*pidList)(&cfg.pids), "pid", "sample this process's CPU and memory (from /proc) around the window; `PID[,PID...]`: several processes, e.g. the instances behind each -url in order")
	fs.StringVar(&cfg.redis, "redis", "", "sample this redis-server's CPU and commands (INFO) around the window: `host:port or /unix/socket` (on this machine)")
	fs.IntVar(&cfg.readBuf, "read-buffer", 4096, "read buffer bytes per stream")
	fs.IntVar(&cfg.h3PerConn, "h3-streams-per-conn", 100, "with -proto h3, open a QUIC connection per this many streams")
	fs.IntVar(&cfg.h2PerConn, "h2-streams-per-conn", 0, "with -proto h2, spread the streams over one connection per this many (1: a connection per stream, as separate browsers have); 0: as many streams per connection as the server allows")
	fs.StringVar(&cfg.upstreamHealth, "upstream-health", "", "`URL` of the sseload upstream's /healthz: report how many upstream streams serve the client's streams (1 when a proxy shares one upstream stream)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: sseload client -url URL [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	limit, err := raiseOpenFileLimit()
	if err != nil {
		return fmt.Errorf("raising the open file limit: %w", err)
	}
	if need := cfg.openFilesNeeded(); limit < need {
		return fmt.Errorf("%d streams over %s need about %d open files, RLIMIT_NOFILE allows %d", cfg.n, cfg.proto, need, limit)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, closeTransports, err := newClient(cfg)
	if err != nil {
		return err
	}
	defer closeTransports()
	rep := c.run(ctx)
	if cfg.jsonOut {
		return rep.writeJSON(os.Stdout)
	}
	rep.writeText(os.Stdout)
	return nil
}

func (cfg *clientConfig) validate() error {
	if len(cfg.urls) == 0 {
		return errors.New("-url is required")
	}
	var us []*url.URL
	for _, s := range cfg.urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-url must be an http:// or https:// URL, got %q", s)
		}
		us = append(us, u)
	}
	switch {
	case cfg.n < 1 || cfg.n > maxStreams:
		return fmt.Errorf("-n must be in 1..%d", maxStreams)
	case cfg.duration <= 0 || cfg.duration > maxRunDuration:
		return fmt.Errorf("-duration must be in (0, %s]", maxRunDuration)
	case cfg.ramp < 0 || cfg.ramp > 5*time.Minute:
		return errors.New("-ramp must be in [0, 5m]")
	case cfg.warmup < 0 || cfg.warmup > time.Minute:
		return errors.New("-warmup must be in [0, 1m]")
	case cfg.grace < 0 || cfg.grace > time.Minute:
		return errors.New("-grace must be in [0, 1m]")
	case cfg.connectTimeout <= 0 || cfg.connectTimeout > 5*time.Minute:
		return errors.New("-connect-timeout must be in (0, 5m]")
	case cfg.readBuf < 64 || cfg.readBuf > 1<<20:
		return errors.New("-read-buffer must be in 64..1048576")
	case cfg.h3PerConn < 1 || cfg.h3PerConn > 10_000:
		return errors.New("-h3-streams-per-conn must be in 1..10000")
	case cfg.h2PerConn < 0 || cfg.h2PerConn > 10_000:
		return errors.New("-h2-streams-per-conn must be in 0..10000")
	case cfg.h2PerConn > 0 && cfg.proto != "h2":
		return errors.New("-h2-streams-per-conn needs -proto h2")
	}
	switch cfg.proto {
	case "h1", "h2":
	case "h3":
		for _, u := range us {
			if u.Scheme != "https" {
				return errors.New("-proto h3 needs https:// URLs")
			}
		}
	default:
		return fmt.Errorf("-proto must be h1, h2 or h3, not %q", cfg.proto)
	}
	for _, u := range us {
		if !isLoopbackHost(u.Hostname()) {
			fmt.Fprintf(os.Stderr, "sseload client: note: %s is not a loopback address; load goes only where -url says\n", u.Hostname())
		}
	}
	if cfg.upstreamHealth != "" {
		h, err := url.Parse(cfg.upstreamHealth)
		if err != nil || (h.Scheme != "http" && h.Scheme != "https") || h.Host == "" {
			return fmt.Errorf("-upstream-health must be an http:// or https:// URL, got %q", cfg.upstreamHealth)
		}
	}
	return nil
}

// openFilesNeeded estimates the file descriptors a run needs: a connection
// per stream over HTTP/1.1; over HTTP/2 at most 100 streams per connection
// (servers allow at least that many: Go and Caddy 250, nginx 128), or
// -h2-streams-per-conn if fewer; over HTTP/3 one UDP socket per
// -h3-streams-per-conn streams. Plus some spare.
func (cfg *clientConfig) openFilesNeeded() uint64 {
	conns := cfg.n
	switch cfg.proto {
	case "h2":
		per := 100
		if cfg.h2PerConn > 0 {
			per = min(per, cfg.h2PerConn)
		}
		conns = (cfg.n + per - 1) / per
	case "h3":
		conns = (cfg.n + cfg.h3PerConn - 1) / cfg.h3PerConn
	}
	return uint64(conns) + 50
}

// upstreamStreams asks an sseload upstream's /healthz ("ok N streams ...")
// how many streams it is serving.
func upstreamStreams(ctx context.Context, healthURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
	if err != nil {
		return 0, err
	}
	t := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer t.CloseIdleConnections()
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var line [128]byte
	n, _ := io.ReadFull(resp.Body, line[:])
	var streams int
	if _, err := fmt.Sscanf(string(line[:n]), "ok %d streams", &streams); err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: not an sseload upstream's /healthz (status %d, %q)", healthURL, resp.StatusCode, line[:n])
	}
	return streams, nil
}

// isLoopbackHost reports whether host is localhost or a loopback IP.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newClient builds the transports for cfg.proto. The returned func closes them.
func newClient(cfg clientConfig) (*client, func(), error) {
	c := &client{cfg: cfg, allSettle: make(chan struct{}), receivedBy: make([]atomic.Uint64, len(cfg.urls))}
	c.winStart.Store(math.MaxInt64)
	c.winEnd.Store(math.MaxInt64)
	tlsConf := &tls.Config{InsecureSkipVerify: cfg.insecure} //nolint:gosec // opt-in for self-signed benchmark certificates
	switch cfg.proto {
	case "h1":
		t := newHTTPTransport(cfg, tlsConf)
		c.rt = func(int) http.RoundTripper { return t }
		return c, t.CloseIdleConnections, nil
	case "h2":
		if cfg.h2PerConn == 0 {
			// Streams share connections up to the server's concurrent stream limit.
			t := newHTTPTransport(cfg, tlsConf)
			c.rt = func(int) http.RoundTripper { return t }
			return c, t.CloseIdleConnections, nil
		}
		// One transport, so one connection pool, per group of h2PerConn
		// streams: a group cannot share another group's connection.
		ts := make([]*http.Transport, (cfg.n+cfg.h2PerConn-1)/cfg.h2PerConn)
		for i := range ts {
			ts[i] = newHTTPTransport(cfg, tlsConf)
		}
		c.rt = func(i int) http.RoundTripper { return ts[i/cfg.h2PerConn] }
		return c, func() {
			for _, t := range ts {
				t.CloseIdleConnections()
			}
		}, nil
	case "h3":
		n := (cfg.n + cfg.h3PerConn - 1) / cfg.h3PerConn
		ts := make([]*http3.Transport, n)
		for i := range ts {
			ts[i] = &http3.Transport{
				TLSClientConfig:    tlsConf,
				DisableCompression: true,
				QUICConfig: &quic.Config{
					HandshakeIdleTimeout: cfg.connectTimeout,
					MaxIdleTimeout:       time.Minute,
					KeepAlivePeriod:      15 * time.Second,
				},
			}
		}
		c.rt = func(i int) http.RoundTripper { return ts[i/cfg.h3PerConn] }
		return c, func() {
			for _, t := range ts {
				t.Close()
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown protocol %q", cfg.proto)
}

// newHTTPTransport is a transport for cfg.proto h1 (a connection per
// stream) or h2 (TLS with ALPN h2, or prior-knowledge h2c for http:// URLs).
func newHTTPTransport(cfg clientConfig, tlsConf *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:                 nil, // never detour through an environment proxy
		DialContext:           (&net.Dialer{Timeout: cfg.connectTimeout}).DialContext,
		TLSClientConfig:       tlsConf.Clone(), // the transport adds its ALPN protocols to its own
		TLSHandshakeTimeout:   cfg.connectTimeout,
		ResponseHeaderTimeout: cfg.connectTimeout,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   -1,
		Protocols:             new(http.Protocols),
	}
	if cfg.proto == "h1" {
		t.Protocols.SetHTTP1(true)
	} else {
		t.Protocols.SetHTTP2(true)
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t
}

// run opens the streams, measures one window and returns the report.
func (c *client) run(ctx context.Context) *Report {
	cfg := c.cfg
	rep := &Report{URL: cfg.urls[0], Proto: cfg.proto, H2PerConn: cfg.h2PerConn, Streams: cfg.n}
	if len(cfg.urls) > 1 {
		rep.URLs = cfg.urls
	}
	if len(cfg.pids) > 0 {
		rep.PID = cfg.pids[0]
	}
	// One sample per process, three times: before the first stream opens,
	// at the window's start and at its end.
	var base, atStart, atEnd []ProcSample
	var procErr error
	sample := func(dst *[]ProcSample) {
		for _, pid := range cfg.pids {
			if procErr != nil {
				return
			}
			var s ProcSample
			s, procErr = readProcSample(pid)
			*dst = append(*dst, s)
		}
	}
	sample(&base)
	var redis redisSampler
	if cfg.redis != "" {
		redis.addr = cfg.redis
		redis.sample() // before the streams: also checks the address
	}

	streamCtx, cancelStreams := context.WithCancel(ctx)
	defer cancelStreams()
	stats := make([]streamStat, cfg.n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range cfg.n {
		wg.Go(func() {
			if d := cfg.ramp * time.Duration(i) / time.Duration(cfg.n); d > 0 {
				if !sleepCtx(streamCtx, d) {
					c.settle()
					return
				}
			}
			c.stream(streamCtx, i, &stats[i])
		})
	}

	// Wait for every stream to be open or failed.
	select {
	case <-c.allSettle:
	case <-time.After(cfg.ramp + cfg.connectTimeout):
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d streams still opening after %s", int64(cfg.n)-c.settled.Load(), cfg.ramp+cfg.connectTimeout))
	case <-ctx.Done():
	}
	rep.ConnectSeconds = time.Since(t0).Seconds()
	interrupted := !sleepCtx(ctx, cfg.warmup)

	// The measured window.
	sample(&atStart)
	redis.sample()
	recv0 := c.received.Load()
	recvBy0 := c.receivedByURL()
	ws := time.Now()
	c.winStart.Store(ws.UnixNano())
	if !interrupted {
		interrupted = !sleepCtx(ctx, cfg.duration)
	}
	we := time.Now()
	c.winEnd.Store(we.UnixNano())
	recv1 := c.received.Load()
	recvBy1 := c.receivedByURL()
	sample(&atEnd)
	redis.sample()
	if cfg.upstreamHealth != "" {
		if n, err := upstreamStreams(ctx, cfg.upstreamHealth); err != nil {
			rep.Warnings = append(rep.Warnings, "upstream streams: "+err.Error())
		} else {
			rep.UpstreamStreams = &n
		}
	}
	rep.WindowSeconds = we.Sub(ws).Seconds()
	rep.ReceivedInWindow = recv1 - recv0

	if !interrupted {
		c.awaitTails(ctx, cfg.grace)
	}
	rep.UnconfirmedTails = int(c.expecting.Load() - c.confirmed.Load())
	rep.Interrupted = interrupted || ctx.Err() != nil
	cancelStreams()
	wg.Wait()

	c.summarize(rep, stats)
	if len(cfg.pids) > 0 {
		if procErr != nil {
			rep.Warnings = append(rep.Warnings, "process sampling: "+procErr.Error())
		} else {
			rep.Process = newProcReport(cfg.pids[0], sumSamples(base), sumSamples(atStart), sumSamples(atEnd), rep.ReceivedInWindow, rep.Connected)
			if len(cfg.pids) > 1 {
				rep.Process.PID = 0 // the sum of several
				for k, pid := range cfg.pids {
					events, streams := rep.ReceivedInWindow, rep.Connected
					if u := cfg.pidServes(k); u >= 0 {
						events = recvBy1[u] - recvBy0[u]
						streams = rep.ConnectedBy[u]
					}
					p := newProcReport(pid, base[k], atStart[k], atEnd[k], events, streams)
					if u := cfg.pidServes(k); u >= 0 {
						p.URLIndex = &u
					}
					rep.Processes = append(rep.Processes, p)
				}
			}
		}
	}
	if cfg.redis != "" {
		rep.Redis = redis.report(rep.ReceivedInWindow)
		if redis.err != nil {
			rep.Warnings = append(rep.Warnings, "redis sampling: "+redis.err.Error())
		}
	}
	return rep
}

// receivedByURL reads the per-URL event counters.
func (c *client) receivedByURL() []uint64 {
	n := make([]uint64, len(c.receivedBy))
	for i := range c.receivedBy {
		n[i] = c.receivedBy[i].Load()
	}
	return n
}

// awaitTails waits until every stream that carries events has received one
// sent after the window, so that (streams being ordered) every event sent
// inside the window has arrived or is known lost; at most limit.
func (c *client) awaitTails(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for c.confirmed.Load() < c.expecting.Load() && time.Now().Before(deadline) {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return
		}
	}
}

// settle counts one stream as open or failed.
func (c *client) settle() {
	if c.settled.Add(1) == int64(c.cfg.n) {
		close(c.allSettle)
	}
}

// stream opens stream i and reads it until ctx ends.
func (c *client) stream(ctx context.Context, i int, st *streamStat) {
	st.rate = -1
	st.url = c.cfg.target(i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.urls[st.url], nil)
	if err != nil {
		st.fail("request", err.Error())
		c.settle()
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := c.rt(i).RoundTrip(req)
	if err != nil {
		st.fail("connect: "+errKind(err), err.Error())
		c.settle()
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.fail(fmt.Sprintf("status %d", resp.StatusCode), resp.Status)
		c.settle()
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		st.fail("content-type "+ct, "Content-Type: "+ct)
		c.settle()
		return
	}
	if r, err := strconv.ParseFloat(resp.Header.Get("X-Sseload-Rate"), 64); err == nil {
		st.rate = r
	}
	st.connected = true
	c.connected.Add(1)
	if st.rate != 0 { // announced events, or unknown
		c.expecting.Add(1)
	}
	c.settle()

	var now int64
	p := Parser{
		OnEvent:   func(ev Event) { c.onEvent(st, now, ev.Data) },
		OnComment: func([]byte) { st.comments++ },
	}
	buf := make([]byte, c.cfg.readBuf)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			now = time.Now().UnixNano()
			p.Feed(buf[:n])
		}
		if err != nil {
			if ctx.Err() == nil {
				st.endedEarly = true
				st.fail("stream ended: "+errKind(err), err.Error())
				if st.rate != 0 && !st.confirmed {
					c.expecting.Add(-1) // nothing more will arrive
				}
			}
			return
		}
	}
}

// onEvent accounts one event received at now (unix nanoseconds).
func (c *client) onEvent(st *streamStat, now int64, data []byte) {
	c.received.Add(1)
	c.receivedBy[st.url].Add(1)
	st.events++
	sent, seq, origin, _, ok := parseStamp(data)
	if !ok {
		st.bad++
		return
	}
	switch {
	case st.prevSeq == 0 || seq == st.prevSeq+1:
	case seq > st.prevSeq:
		st.gaps += seq - st.prevSeq - 1
	default:
		st.dups++
	}
	st.prevSeq = max(st.prevSeq, seq)
	if sent >= c.winEnd.Load() {
		if !st.confirmed {
			st.confirmed = true
			c.confirmed.Add(1)
		}
		return
	}
	if sent < c.winStart.Load() {
		return
	}
	lat := now - sent
	if lat < 0 {
		c.negative.Add(1)
		lat = 0
	}
	c.hist.Record(uint64(lat))
	c.fromOrigin.Record(uint64(max(now-origin, 0)))
	st.inWin++
	if !st.sawWindowEvents || seq < st.firstWin {
		st.firstWin = seq
	}
	st.lastWin = max(st.lastWin, seq)
	st.sawWindowEvents = true
}

// parseStamp reads "SENDNANOS SEQ" from the start of an event's data, and
// the optional origin field after it, "oORIGINNANOS" (broadcast events: when
// their tick was made). Without that field origin is sent and hasOrigin
// false. A field after SEQ starting with "o" that is not "o" and digits makes
// the stamp malformed; anything else after SEQ (the padding) is ignored.
func parseStamp(b []byte) (sent int64, seq uint64, origin int64, hasOrigin, ok bool) {
	sent, i, ok := parseField(b, 0)
	if !ok || i >= len(b) {
		return 0, 0, 0, false, false
	}
	n, j, ok := parseField(b, i+1)
	if !ok {
		return 0, 0, 0, false, false
	}
	seq = uint64(n)
	if j+1 >= len(b) || b[j+1] != 'o' {
		return sent, seq, sent, false, true
	}
	origin, _, ok = parseField(b, j+2)
	if !ok {
		return 0, 0, 0, false, false
	}
	return sent, seq, origin, true, true
}

// parseField reads 1 to 19 ASCII digits from b[i:], which must end there or
// with a space, and returns their value and the index after them.
func parseField(b []byte, i int) (v int64, end int, ok bool) {
	j := i
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		j++
	}
	if j == i || j-i > 19 || (j < len(b) && b[j] != ' ') {
		return 0, 0, false
	}
	return v, j, true
}

func (st *streamStat) fail(kind, msg string) {
	if st.failKind == "" {
		st.failKind, st.failMsg = kind, msg
	}
}

// errKind shortens an error to a category without addresses, ports or
// HTTP/2 stream IDs: the text after its last ": ", without a leading
// "stream ID N; " (an HTTP/2 stream error names its stream).
func errKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if rest, ok := strings.CutPrefix(s, "stream ID "); ok {
		if id, after, ok := strings.Cut(rest, "; "); ok && id != "" && strings.Trim(id, "0123456789") == "" {
			s = "HTTP/2 stream error: " + after
		}
	}
	return s
}

// sleepCtx sleeps for d and reports whether it did so without ctx ending.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
