package proxy

import (
	"testing"
	"time"
)

func TestBackoffWaitsAtLeastTheUpstreamsRetry(t *testing.T) {
	rc := &Reconnect{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for _, c := range []struct {
		body           string
		min, max, next time.Duration
	}{
		{"data: no retry\n\n", 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		{"retry: 3000\ndata: 1\n\n", 3 * time.Second, 4500 * time.Millisecond, 5 * time.Second},
		{"retry: 4000\ndata: 1\n\n", 4 * time.Second, 5 * time.Second, 5 * time.Second},
		{"retry: 60000\n\n", 5 * time.Second, 5 * time.Second, 5 * time.Second}, // capped at Max
		{"retry: 0\n\n", 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		{"retry: 3000\ndata: never completed", 3 * time.Second, 4500 * time.Millisecond, 5 * time.Second},
	} {
		w, _, _ := startStream(t, &Options{}, nil)
		w.Write([]byte(c.body))
		for range 200 {
			wait, next := rc.backoff(rc.Initial, w)
			if wait < c.min || wait > c.max || next != c.next {
				t.Fatalf("%q: backoff = %v, %v; want a wait in [%v, %v] and %v next", c.body, wait, next, c.min, c.max, c.next)
			}
		}
	}
}
