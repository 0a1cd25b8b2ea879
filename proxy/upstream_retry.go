package proxy

import (
	"math/rand/v2"
	"time"
)

// UpstreamRetry returns the reconnection time the upstream's last retry:
// field set, and whether it set one: what a browser reading the upstream
// directly would wait before coming back. It counts fields in events that
// were never completed too, as the browser's parser does.
func (w *Writer) UpstreamRetry() (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms, ok := w.scan.Retry()
	return time.Duration(ms) * time.Millisecond, ok
}

// backoff returns the wait before the next attempt and the delay the one
// after it starts from. The wait is delay jittered down to half of it. When
// the upstream set its reconnection time with a retry: field, no wait is
// shorter than that (nor than Max): a backend that is restarting or
// shedding load asked its clients to stay away that long. Such a wait is
// jittered up by at most half, within Max, and the backoff doubles on from
// it.
func (rc *Reconnect) backoff(delay time.Duration, w *Writer) (wait, next time.Duration) {
	wait = delay/2 + rand.N(delay/2+1)
	floor, ok := w.UpstreamRetry()
	if ok {
		floor = min(floor, rc.Max)
		if wait < floor {
			wait = floor + rand.N(min(floor/2, rc.Max-floor)+1)
		}
		delay = max(delay, floor)
	}
	return wait, min(2*delay, rc.Max)
}
