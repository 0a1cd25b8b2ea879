// Package legacy is a Server-Sent-Events backend that behaves like a typical
// Express (Node.js) server written before HTTP/2 was common. It is the
// "legacy upstream" of the sse_proxy demo and of tests.
//
// Like many such servers it gets a few things wrong for browsers on HTTP/2 and
// HTTP/3, which is exactly what sse_proxy is there to fix:
//
//   - it sends HTTP/1.1 connection headers (Connection, Keep-Alive) that are
//     forbidden in HTTP/2 and HTTP/3 responses;
//   - it expects an "Authorization: Bearer" header, which EventSource cannot send;
//   - it allows every origin with "Access-Control-Allow-Origin: *", which
//     browsers refuse for credentialed requests;
//   - it goes quiet for long stretches (by default 20 s after every burst of
//     events), long enough for idle timeouts on the way (load balancers,
//     corporate proxies) to cut the stream when nothing sends heartbeats.
//
// Each stream sends events of the form
//
//	id: 7
//	event: tick
//	data: {"n":7,"time":"2024-05-01T12:00:00.123Z"}
//
// and continues the numbering after the Last-Event-ID request header when a
// client reconnects.
package legacy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults used for zero fields of [Options].
const (
	DefaultPath     = "/events"
	DefaultEvent    = "tick"
	DefaultInterval = time.Second
	DefaultBurst    = 5
	DefaultPause    = 20 * time.Second
)

// HealthPath is answered with 200 "ok" and no authentication, for load
// balancer and Kubernetes health checks.
const HealthPath = "/healthz"

// Options configures the backend. The zero value is a working backend that
// asks for no authentication.
type Options struct {
	// Token is the bearer token every stream request must present as
	// "Authorization: Bearer <Token>". Empty means no authentication.
	Token string

	// Path is the URL path of the stream. Default: DefaultPath ("/events").
	// "*" serves the stream on every path except HealthPath.
	Path string

	// Event is the event type written on the "event:" line. Default: "tick".
	Event string

	// Interval is the time between two events of a burst. Default: 1 s.
	Interval time.Duration

	// Burst is the number of events sent before each pause. The first event
	// of a stream is sent at once. Default: 5.
	Burst int

	// Pause is how long the stream stays silent after each burst. Default: 20 s.
	// A negative value means no pause.
	Pause time.Duration

	// Now returns the time written into each event. Default: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Event == "" {
		o.Event = DefaultEvent
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Pause == 0 {
		o.Pause = DefaultPause
	}
	if o.Pause < 0 {
		o.Pause = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NewHandler returns the backend as an http.Handler. Each stream runs in the
// goroutine that serves its request and ends when the request's context is
// done (client gone or server shutting down); the handler starts no other
// goroutines.
func NewHandler(opts Options) http.Handler {
	return &handler{opts: opts.withDefaults()}
}

type handler struct {
	opts Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Powered-By", "Express")
	switch {
	case r.URL.Path == HealthPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	case h.opts.Path != "*" && r.URL.Path != h.opts.Path:
		writeJSONError(w, http.StatusNotFound, "not found")
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed")
	case !h.authorized(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="events"`)
		writeJSONError(w, http.StatusUnauthorized, "unauthorized")
	default:
		h.stream(w, r)
	}
}

// authorized reports whether r carries the configured bearer token.
func (h *handler) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(h.opts.Token)) == 1
}

// stream writes bursts of events separated by pauses until the request's
// context ends or a write fails.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("Keep-Alive", "timeout=5")
	hdr.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}

	n := lastEventID(r)
	timer := time.NewTimer(0) // the first event goes out at once
	defer timer.Stop()
	for sent := 0; ; sent++ {
		select {
		case <-r.Context().Done():
			return
		case <-timer.C:
		}
		n++
		if err := h.writeEvent(w, n); err != nil || rc.Flush() != nil {
			return
		}
		if (sent+1)%h.opts.Burst == 0 {
			timer.Reset(h.opts.Interval + h.opts.Pause)
		} else {
			timer.Reset(h.opts.Interval)
		}
	}
}

func (h *handler) writeEvent(w http.ResponseWriter, n uint64) error {
	data, err := json.Marshal(struct {
		N    uint64 `json:"n"`
		Time string `json:"time"`
	}{n, h.opts.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", n, h.opts.Event, data)
	return err
}

// lastEventID returns the number in the Last-Event-ID header, or 0 when the
// header is absent or not a number (the stream then starts at 1).
func lastEventID(r *http.Request) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(r.Header.Get("Last-Event-ID")), 10, 63)
	if err != nil {
		return 0
	}
	return n
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Serve runs NewHandler(opts) on l until ctx is done, then ends all open
// streams, shuts the server down and returns. It returns nil after a shutdown
// caused by ctx, and otherwise the error that stopped the server.
func Serve(ctx context.Context, l net.Listener, opts Options) error {
	// Streams never end by themselves, so http.Server.Shutdown alone would
	// wait for them forever: give every request a context we cancel first.
	base, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	srv := &http.Server{
		Handler:           NewHandler(opts),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	endStreams()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
