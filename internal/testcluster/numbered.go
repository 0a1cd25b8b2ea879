package testcluster

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Numbered is an upstream with a history, as a real feed has: it makes
// event n every interval (ids 1, 2, 3, ...; data "event n"). A request
// without Last-Event-ID gets the events from the current one on; with
// Last-Event-ID k it gets k+1 and the rest of the history at once, then
// live events: it honours Last-Event-ID, so a proxy that resumes it loses
// and repeats nothing.
type Numbered struct {
	srv *httptest.Server

	// Requests counts every stream request.
	Requests atomic.Int64
	// Open is the number of stream requests being answered now.
	Open atomic.Int64
	// MaxOpen is the most stream requests answered at once.
	MaxOpen atomic.Int64

	mu      sync.Mutex    // guards n and changed; never held across I/O; a leaf lock
	n       int           // the newest event made
	changed chan struct{} // closed and replaced when n grows
	stop    chan struct{}
	done    chan struct{}
}

// NewNumbered starts a numbered upstream (plain HTTP/1.1) that makes an
// event every interval, until the test ends. Start it before the instances
// in front of it, so that it stops after they do.
func NewNumbered(t testing.TB, interval time.Duration) *Numbered {
	u := &Numbered{changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	go u.tick(interval) // owned by u: ends when the cleanup closes stop
	t.Cleanup(func() {
		close(u.stop)
		<-u.done
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
	return u
}

// Addr is host:port for a Caddyfile.
func (u *Numbered) Addr() string { return u.srv.Listener.Addr().String() }

// Newest is the id of the newest event made, 0 before the first.
func (u *Numbered) Newest() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

func (u *Numbered) tick(interval time.Duration) {
	defer close(u.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
			u.mu.Lock()
			u.n++
			close(u.changed)
			u.changed = make(chan struct{})
			u.mu.Unlock()
		}
	}
}

func (u *Numbered) serve(w http.ResponseWriter, r *http.Request) {
	u.Requests.Add(1)
	now := u.Open.Add(1)
	defer u.Open.Add(-1)
	for {
		m := u.MaxOpen.Load()
		if now <= m || u.MaxOpen.CompareAndSwap(m, now) {
			break
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	f.Flush()
	u.mu.Lock()
	next := u.n
	u.mu.Unlock()
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		if k, err := strconv.Atoi(last); err == nil {
			next = k + 1
		}
	}
	for {
		u.mu.Lock()
		n, changed := u.n, u.changed
		u.mu.Unlock()
		for ; next <= n; next++ {
			if _, err := fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", next, next); err != nil {
				return
			}
		}
		f.Flush()
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-u.stop:
			return
		}
	}
}
