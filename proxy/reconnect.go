package proxy

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Reconnect keeps a client's stream open across upstream failures: when the
// upstream's response ends or breaks, or the first answer is a 5xx or no
// answer at all, the upstream is asked again, with Last-Event-ID set to the
// last complete event the client got, after a backoff with jitter. It is
// read-only once in use.
type Reconnect struct {
	// Initial and Max bound the backoff between attempts; it doubles from
	// Initial up to Max, and each wait is jittered down to half of it. The
	// upstream's retry: field sets the shortest wait (see backoff).
	Initial, Max time.Duration
	// For is how long the upstream may stay down before the client's
	// stream is ended with Hint (0: forever).
	For time.Duration
	// Hint returns the retry field written when the proxy gives up.
	Hint func() []byte
	// Logger gets one line per failure and per recovery.
	Logger *zap.Logger
	// Metrics, when set, counts reconnects.
	Metrics *Metrics

	// warnings and infos rate-limit logs across all streams of a handler.
	warnings, infos RateLog
}

// Serve relays up's responses from next to w until the client leaves, the
// proxy ends the stream, or the upstream gives a final answer. ctx is the
// context of up, cancelled when w ends the stream. rv, when not nil, keeps
// the cookies the upstream sets and puts them on each reconnect's request.
func (rc *Reconnect) Serve(ctx context.Context, w *Writer, up *http.Request, rv *Revisit, next caddyhttp.Handler) error {
	wantStream := WantsStream(up)
	delay := rc.Initial
	base := up.Context()
	var outage time.Time // when the current outage began; zero while up
	var outageReason string
	for {
		a := &attempt{client: w, header: make(http.Header), first: !w.Committed(), wantStream: wantStream, revisit: rv}
		a.onStream = func() {
			if !outage.IsZero() {
				rc.log(zap.InfoLevel, "upstream recovered", zap.Duration("outage", time.Since(outage)), zap.String("after", outageReason))
				outage = time.Time{}
			}
		}
		start := time.Now()
		err, aborted := callNext(next, a, up)
		if w.Ended() || ctx.Err() != nil {
			return nil
		}
		switch a.outcome {
		case relayed:
			// The first answer went to the client as it was (a 4xx, a
			// 204, a 5xx for a client that did not ask for a stream...).
			if aborted {
				panic(http.ErrAbortHandler)
			}
			return err
		case final:
			// On a reconnect, 204 or a 4xx: end the stream cleanly; the
			// browser's own reconnect will get that answer.
			w.End(nil, 0, ReasonUpstreamFinal)
			rc.log(zap.InfoLevel, "upstream answered a reconnect with a final status; ending the stream", zap.Int("status", a.status))
			return nil
		case noAnswer:
			if a.first && !wantStream {
				return err // e.g. 502: relayed by Caddy's error handling
			}
		}

		var reason string
		switch {
		case a.outcome == noAnswer && err != nil:
			reason = err.Error()
		case a.outcome == failed:
			reason = fmt.Sprintf("status %d", a.status)
		case aborted:
			reason = "response broke mid-stream"
		}
		if a.outcome == streaming && time.Since(start) >= rc.Max {
			delay = rc.Initial // a long healthy response: start over
		}

		w.CommitStream() // 200 text/event-stream, if no answer was sent yet
		if !w.Restart() {
			w.Abort(ReasonEventCut)
			rc.log(zap.WarnLevel, "upstream broke where the stream cannot be resumed (inside an event too large to hold, or a compressed stream); ending it")
			return nil
		}
		now := time.Now()
		if reason != "" && outage.IsZero() {
			outage, outageReason = now, reason
			rc.log(zap.WarnLevel, "upstream failed; keeping the client's stream open and retrying", zap.String("reason", reason))
		}
		if !outage.IsZero() && rc.For > 0 && now.Sub(outage) >= rc.For {
			w.End(rc.Hint(), time.Second, ReasonUpstreamDown)
			rc.log(zap.WarnLevel, "upstream still down; ending the stream with a retry hint",
				zap.Duration("outage", now.Sub(outage)), zap.String("reason", outageReason))
			return nil
		}

		var wait time.Duration
		wait, delay = rc.backoff(delay, w)
		if !outage.IsZero() && rc.For > 0 {
			wait = min(wait, outage.Add(rc.For).Sub(now)) // the last try falls within For
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		if id, ok := w.LastEventID(); ok {
			up.Header.Set("Last-Event-ID", id)
		}
		if err := rv.Prepare(up); err != nil {
			// The browser's own reconnect would get the proxy's 401: end
			// the stream as for a final answer.
			w.End(nil, 0, ReasonUpstreamFinal)
			rc.log(zap.InfoLevel, "a credential the upstream removed is missing for the reconnect; ending the stream", zap.Error(err))
			return nil
		}
		up = withOwnVars(up, base)
		if rc.Metrics != nil {
			rc.Metrics.reconnect()
		}
	}
}

// withOwnVars gives the next attempt a copy of the request's variable
// table, in a context made from base (so that the chain does not grow with
// every reconnect). reverse_proxy writes to that table on every attempt,
// while a dial an earlier attempt started may still be reading it: Go's
// transport finishes dials in the background, and Caddy's dialer reads the
// table.
func withOwnVars(r *http.Request, base context.Context) *http.Request {
	vars, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if !ok {
		return r
	}
	return r.WithContext(context.WithValue(base, caddyhttp.VarsCtxKey, maps.Clone(vars)))
}

// log writes at most one line a second per level for the handler, the rest
// at debug level: when an upstream restarts, every stream on it fails and
// recovers at once, and one line says it.
func (rc *Reconnect) log(level zapcore.Level, msg string, fields ...zap.Field) {
	limit := &rc.infos
	if level >= zapcore.WarnLevel {
		limit = &rc.warnings
	}
	limit.Log(rc.Logger, level, msg, fields...)
}

// callNext runs one upstream attempt. reverse_proxy panics with
// http.ErrAbortHandler when the upstream breaks after the header; here that
// is an outcome to act on, not a reason to drop the client.
func callNext(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (err error, aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	return next.ServeHTTP(w, r), false
}

type outcome uint8

const (
	noAnswer  outcome = iota // no status yet (next failed before an answer)
	streaming                // an event stream, relayed into the client's stream
	failed                   // an answer that is retried; its body is discarded
	relayed                  // the first answer, passed to the client as it is
	final                    // a definitive answer to a reconnect: the stream ends
)

// attempt is the ResponseWriter of one upstream attempt. It decides from
// the status what becomes of the answer; the client's header is written
// only by the first answer that reaches it.
type attempt struct {
	client     *Writer
	header     http.Header
	first      bool // nothing has been sent to the client yet
	wantStream bool // the client asked for an event stream
	outcome    outcome
	status     int
	onStream   func() // called when the answer is an event stream
	revisit    *Revisit
}

func (a *attempt) Header() http.Header { return a.header }

func (a *attempt) WriteHeader(code int) {
	if a.outcome != noAnswer || (code >= 100 && code < 200) {
		return
	}
	a.status = code
	a.revisit.Store(a.header) // as the browser does with any answer's cookies
	isStream := code == http.StatusOK && IsEventStream(a.header.Get("Content-Type"))
	switch {
	case isStream:
		a.outcome = streaming
		a.onStream()
		if a.first {
			a.commit(code)
		}
	case a.first && !(a.wantStream && code >= 500):
		a.outcome = relayed
		a.commit(code)
	case a.first || code >= 500:
		a.outcome = failed
	default:
		a.outcome = final
	}
}

// commit sends this answer's header as the client's.
func (a *attempt) commit(code int) {
	h := a.client.Header()
	for k, v := range a.header {
		h[k] = v
	}
	a.client.WriteHeader(code)
}

func (a *attempt) Write(p []byte) (int, error) {
	if a.outcome == noAnswer {
		a.WriteHeader(http.StatusOK)
	}
	switch a.outcome {
	case streaming, relayed:
		return a.client.Write(p)
	}
	return len(p), nil // a failed answer's body: discarded
}

// FlushError flushes the client's stream; the client writer flushes every
// write itself, so this is usually free.
func (a *attempt) FlushError() error {
	switch a.outcome {
	case streaming, relayed:
		return a.client.FlushError()
	}
	return nil
}

// Unwrap gives http.ResponseController the client's writer.
func (a *attempt) Unwrap() http.ResponseWriter { return a.client }
