package cluster

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

// numbered is an upstream with a history, as a real feed has: it makes
// event n every interval (ids 1, 2, 3, ...). A request without
// Last-Event-ID gets the events from the current one on; with
// Last-Event-ID k it gets k+1 and the rest of the history at once, then
// live events: it honours Last-Event-ID, so a proxy that resumes it loses
// and repeats nothing.
type numbered struct {
	srv *httptest.Server

	requests atomic.Int64 // every stream request
	open     atomic.Int64 // stream requests being answered now
	maxOpen  atomic.Int64 // the most open at once

	mu      sync.Mutex
	n       int           // the newest event made
	changed chan struct{} // closed and replaced when n grows
	stop    chan struct{}
	done    chan struct{}
}

func newNumbered(t *testing.T, interval time.Duration) *numbered {
	u := &numbered{changed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	go u.tick(interval)
	t.Cleanup(func() {
		close(u.stop)
		<-u.done
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
	return u
}

// Addr is host:port for a Caddyfile.
func (u *numbered) Addr() string { return u.srv.Listener.Addr().String() }

func (u *numbered) tick(interval time.Duration) {
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

func (u *numbered) serve(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	now := u.open.Add(1)
	defer u.open.Add(-1)
	for {
		m := u.maxOpen.Load()
		if now <= m || u.maxOpen.CompareAndSwap(m, now) {
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
