package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Upstream limits, per event and per request.
const (
	maxEventSize = 64 << 10
	maxRate      = 1000.0 // events per second per stream
	maxHubs      = 16     // distinct (rate, size) broadcast schedules
)

// padding is the filler that brings events up to the requested size.
var padding = []byte(strings.Repeat("x", maxEventSize))

// upstream is an HTTP/1.1 SSE backend. Every request is one endless stream of
// events "id: SEQ\ndata: SENDUNIXNANO SEQ PADDING\n\n", either on the stream's
// own ticker (per-stream) or on a ticker shared by all streams with the same
// rate and size (broadcast). A broadcast event also carries the time its
// tick was made, after SEQ: "data: SENDUNIXNANO SEQ oORIGINUNIXNANO PADDING".
// SEND is stamped as the event is written to its stream, so it leaves out
// the time the upstream took to fan the tick out to the streams before it;
// ORIGIN includes it.
type upstream struct {
	rate       float64
	size       int
	mode       string
	maxStreams int64

	active  atomic.Int64
	served  atomic.Uint64
	events  atomic.Uint64
	refused atomic.Uint64

	mu   sync.Mutex
	hubs map[hubKey]*hub
}

func runUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on (port 0 picks a free port)")
	addrFile := fs.String("addr-file", "", "write the listening address to this `file` once ready")
	rate := fs.Float64("rate", 10, "events per second per stream; 0 sends no events (idle streams)")
	size := fs.Int("size", 256, "bytes per event on the wire, including framing (minimum ~50, ~70 in broadcast mode)")
	mode := fs.String("mode", "per-stream", "per-stream: a ticker per stream; broadcast: one ticker fanned out to all streams")
	maxConc := fs.Int("max-streams", maxStreams, "refuse streams beyond this many concurrent ones (503)")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "exit after this long even if nobody stops the process")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: sseload upstream [flags]\n\nQuery parameters rate=, size= and mode= override the flags per request.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkRateSize(*rate, *size); err != nil {
		return err
	}
	if *mode != "per-stream" && *mode != "broadcast" {
		return fmt.Errorf("-mode must be per-stream or broadcast, not %q", *mode)
	}
	if *maxConc < 1 || *maxConc > maxStreams {
		return fmt.Errorf("-max-streams must be in 1..%d", maxStreams)
	}
	if *lifetime <= 0 || *lifetime > 24*time.Hour {
		return errors.New("-lifetime must be in (0, 24h]")
	}
	if _, err := raiseOpenFileLimit(); err != nil {
		log.Printf("sseload upstream: cannot raise the open file limit: %v", err)
	}

	u := newUpstream(*rate, *size, *mode, *maxConc)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           u,
		ReadHeaderTimeout: 10 * time.Second,
		Protocols:         new(http.Protocols),
		ErrorLog:          log.New(os.Stderr, "sseload upstream: ", 0),
	}
	srv.Protocols.SetHTTP1(true) // a legacy backend: no h2c

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()

	addr := ln.Addr().String()
	fmt.Printf("sseload upstream listening on http://%s/ (rate %g/s, %d B, %s)\n", addr, u.rate, u.size, u.mode)
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(addr+"\n"), 0o644); err != nil {
			ln.Close()
			return err
		}
	}
	start, startCPU := time.Now(), selfCPU()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	srv.Close()
	cpu := selfCPU() - startCPU
	ev := u.events.Load()
	perK := 0.0
	if ev > 0 {
		perK = cpu / float64(ev) * 1000
	}
	fmt.Printf("sseload upstream: %d streams served, %d refused, %d events sent in %s, %.2f CPU s (%.4f CPU s per 1000 events)\n",
		u.served.Load(), u.refused.Load(), ev, time.Since(start).Round(time.Millisecond), cpu, perK)
	return nil
}

func newUpstream(rate float64, size int, mode string, maxConc int) *upstream {
	return &upstream{rate: rate, size: size, mode: mode, maxStreams: int64(maxConc), hubs: map[hubKey]*hub{}}
}

// selfCPU returns this process's CPU time in seconds, or 0 if unknown.
func selfCPU() float64 {
	s, err := readProcSample(os.Getpid())
	if err != nil {
		return 0
	}
	return s.CPUSeconds()
}

func checkRateSize(rate float64, size int) error {
	if rate < 0 || rate > maxRate || math.IsNaN(rate) {
		return fmt.Errorf("rate must be in 0..%g events/s", maxRate)
	}
	if size < 0 || size > maxEventSize {
		return fmt.Errorf("size must be in 0..%d bytes", maxEventSize)
	}
	return nil
}

// ServeHTTP serves /healthz and, on any other path, one event stream.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		fmt.Fprintf(w, "ok %d streams %d served\n", u.active.Load(), u.served.Load())
		return
	}
	rate, size, mode, err := u.streamParams(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if u.active.Add(1) > u.maxStreams {
		u.active.Add(-1)
		u.refused.Add(1)
		http.Error(w, "too many streams", http.StatusServiceUnavailable)
		return
	}
	defer u.active.Add(-1)
	u.served.Add(1)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Sseload-Rate", strconv.FormatFloat(rate, 'g', -1, 64))
	h.Set("X-Sseload-Mode", mode)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	ctx := r.Context()
	switch {
	case rate == 0:
		<-ctx.Done()
	case mode == "broadcast":
		hb, err := u.hub(rate, size)
		if err != nil {
			return
		}
		u.follow(ctx, w, rc, hb, size)
	default:
		u.tick(ctx, w, rc, rate, size)
	}
}

// streamParams returns the request's rate, size and mode: the query
// parameters if present, else the flags.
func (u *upstream) streamParams(r *http.Request) (rate float64, size int, mode string, err error) {
	rate, size, mode = u.rate, u.size, u.mode
	q := r.URL.Query()
	if v := q.Get("rate"); v != "" {
		if rate, err = strconv.ParseFloat(v, 64); err != nil {
			return 0, 0, "", fmt.Errorf("bad rate: %v", err)
		}
	}
	if v := q.Get("size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil {
			return 0, 0, "", fmt.Errorf("bad size: %v", err)
		}
	}
	if v := q.Get("mode"); v != "" {
		mode = v
	}
	if mode != "per-stream" && mode != "broadcast" {
		return 0, 0, "", errors.New("mode must be per-stream or broadcast")
	}
	return rate, size, mode, checkRateSize(rate, size)
}

// tick sends events on this stream's own ticker, sequence numbers from 1.
func (u *upstream) tick(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, rate float64, size int) {
	t := time.NewTicker(interval(rate))
	defer t.Stop()
	var buf []byte
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !u.send(w, rc, &buf, seq, 0, size) {
			return
		}
	}
}

// follow sends the shared ticks of a broadcast hub, starting with the next
// one, each stamped with the time the tick was made.
func (u *upstream) follow(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, hb *hub, size int) {
	var buf []byte
	t := hb.cur.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.done:
		}
		t = t.next
		if !u.send(w, rc, &buf, t.seq, t.at, size) {
			return
		}
	}
}

// send writes and flushes one event stamped with the current time and, if
// originNanos > 0, the time its broadcast tick was made.
func (u *upstream) send(w http.ResponseWriter, rc *http.ResponseController, buf *[]byte, seq uint64, originNanos int64, size int) bool {
	*buf = appendEvent((*buf)[:0], time.Now().UnixNano(), seq, originNanos, size)
	if _, err := w.Write(*buf); err != nil {
		return false
	}
	if rc.Flush() != nil {
		return false
	}
	u.events.Add(1)
	return true
}

// appendEvent appends one event of (at least) size bytes. The origin field
// ("o" and originNanos) follows SEQ if originNanos > 0; without it, as in
// per-stream mode, the client takes the send time as the origin.
func appendEvent(b []byte, sendNanos int64, seq uint64, originNanos int64, size int) []byte {
	start := len(b)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, "\ndata: "...)
	b = strconv.AppendInt(b, sendNanos, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ' ')
	if originNanos > 0 {
		b = append(b, 'o')
		b = strconv.AppendInt(b, originNanos, 10)
		b = append(b, ' ')
	}
	if pad := size - (len(b) - start) - 2; pad > 0 {
		b = append(b, padding[:pad]...)
	}
	return append(b, "\n\n"...)
}

func interval(rate float64) time.Duration {
	return max(time.Duration(float64(time.Second)/rate), time.Microsecond)
}

// hubKey identifies a broadcast schedule.
type hubKey struct {
	rate float64
	size int
}

// hub is one broadcast ticker. Ticks form a linked list: each tick's done
// channel is closed once its successor is linked, so any number of streams
// wait on the same channel, and a stream that falls behind walks the list
// instead of losing events. Nothing is locked on the send path.
type hub struct {
	cur atomic.Pointer[hubTick]
}

type hubTick struct {
	seq  uint64
	at   int64         // unix nanoseconds when run made the tick: the events' origin
	next *hubTick      // set before done is closed
	done chan struct{} // closed when next is published
}

// hub returns the running broadcast hub for rate and size, starting it if needed.
func (u *upstream) hub(rate float64, size int) (*hub, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := hubKey{rate, size}
	if h := u.hubs[k]; h != nil {
		return h, nil
	}
	if len(u.hubs) >= maxHubs {
		return nil, errors.New("too many broadcast schedules")
	}
	h := &hub{}
	h.cur.Store(&hubTick{at: time.Now().UnixNano(), done: make(chan struct{})})
	u.hubs[k] = h
	go h.run(interval(rate))
	return h, nil
}

// run publishes ticks for the life of the process.
func (h *hub) run(every time.Duration) {
	t := time.NewTicker(every)
	for range t.C {
		old := h.cur.Load()
		next := &hubTick{seq: old.seq + 1, at: time.Now().UnixNano(), done: make(chan struct{})}
		old.next = next
		h.cur.Store(next)
		close(old.done)
	}
}
