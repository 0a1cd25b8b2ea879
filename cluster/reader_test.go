package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// reader is an EventSource as the HTML spec has it, for numbered events:
// it follows the stream, and whenever the stream ends or breaks it comes
// back (to the URL next gives, which may be another instance) with
// Last-Event-ID. It records every id it got, in order.
type reader struct {
	client *http.Client
	next   func(attempt int) string
	// perConn, when positive, drops the connection after that many events,
	// as a network that breaks would: the next attempt resumes.
	perConn int

	mu       sync.Mutex
	ids      []int
	attempts int
	statuses map[int]int // answers other than 200, by status
	changed  chan struct{}
}

func newReader(c *http.Client, next func(attempt int) string) *reader {
	return &reader{client: c, next: next, statuses: map[int]int{}, changed: make(chan struct{})}
}

// run reads until ctx ends.
func (r *reader) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		r.once(ctx, r.next(attempt))
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond): // a short retry, as a page with retry: 50 would
		}
	}
}

func (r *reader) once(ctx context.Context, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	r.mu.Lock()
	r.attempts++
	if n := len(r.ids); n > 0 {
		req.Header.Set("Last-Event-ID", strconv.Itoa(r.ids[n-1]))
	}
	r.mu.Unlock()
	resp, err := r.client.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.mu.Lock()
		r.statuses[resp.StatusCode]++
		r.mu.Unlock()
		return
	}
	sc := bufio.NewScanner(resp.Body)
	id, got := "", 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if id != "" {
				n, err := strconv.Atoi(id)
				if err == nil {
					r.mu.Lock()
					r.ids = append(r.ids, n)
					close(r.changed)
					r.changed = make(chan struct{})
					r.mu.Unlock()
					if got++; r.perConn > 0 && got >= r.perConn {
						return
					}
				}
			}
			id = ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		}
	}
}

// connections is how many requests the reader made.
func (r *reader) connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// last is the newest id received, 0 before the first.
func (r *reader) last() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return 0
	}
	return r.ids[len(r.ids)-1]
}

// waitFor waits until an id of at least n arrived.
func (r *reader) waitFor(n int, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		ok := len(r.ids) > 0 && r.ids[len(r.ids)-1] >= n
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// check reports the first place where the ids are not consecutive (a gap
// or a repeat), or nil.
func (r *reader) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return fmt.Errorf("no event at all (%d attempts, statuses %v)", r.attempts, r.statuses)
	}
	for i := 1; i < len(r.ids); i++ {
		if r.ids[i] != r.ids[i-1]+1 {
			lo, hi := max(0, i-3), min(len(r.ids), i+3)
			return fmt.Errorf("id %d follows %d (ids around: %v; %d events, %d attempts)", r.ids[i], r.ids[i-1], r.ids[lo:hi], len(r.ids), r.attempts)
		}
	}
	return nil
}
