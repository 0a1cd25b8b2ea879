package proxy

import "time"

// tick runs on the writer's timer. The timer is armed once per heartbeat
// interval, not reset on every write: a write only records its time, and
// tick works out how long the stream has really been idle. That keeps the
// per-write path free of timer work, whatever the event rate.
func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	switch w.state {
	case stateOpen:
	case stateEnding:
		w.endingTick(now)
		return
	default: // no stream, or no more bytes of ours in it
		return
	}
	hb := w.opts.Heartbeat
	if w.encoded || hb <= 0 {
		return
	}
	if idle := now.Sub(w.last); idle < hb {
		w.timer.Reset(heartbeatDelay(now, hb-idle, hb))
		return
	}
	if w.clientAtBoundary() {
		err := w.write(heartbeatLine)
		if err == nil {
			err = w.flushNow()
		}
		if err != nil {
			// The client is gone; the copy loop will notice on its own.
			w.fail()
			return
		}
		if w.opts.MaxEventSize == 0 {
			// What the client saw last is an empty LF line, whatever CR
			// the upstream wrote before it. (Holding, the scanner follows
			// the upstream, which may be inside an event it holds.)
			w.scan.Reset()
		}
		w.last = now
		if w.opts.Metrics != nil {
			w.opts.Metrics.heartbeat()
		}
	}
	// Mid-event the stream cannot take a heartbeat; look again after an
	// interval (the upstream is expected to finish its event by then).
	w.timer.Reset(heartbeatDelay(now, hb, hb))
}

// heartbeatDelay returns d rounded up so that the timer fires on a grid
// that all streams share (a sixteenth of the interval, at most a second).
// Idle streams then send their heartbeats in bursts: the timers of a burst
// fire together, and Go's HTTP/2 server, which flushes a connection when
// its queue of frames runs empty, sends the heartbeats of all the streams
// on a connection in one write instead of one write each. A heartbeat goes
// out at most a grid step after the interval.
func heartbeatDelay(now time.Time, d, interval time.Duration) time.Duration {
	grid := heartbeatGrid(interval)
	if grid <= 0 {
		return d
	}
	at := now.Add(d).UnixNano()
	g := int64(grid)
	at = (at + g - 1) / g * g
	return time.Duration(at - now.UnixNano())
}

// heartbeatGrid is the step heartbeat timers are aligned to.
func heartbeatGrid(interval time.Duration) time.Duration {
	return min(interval/16, time.Second)
}

// HeartbeatLatest is the longest an idle stream goes without a byte with
// heartbeats every interval: the interval plus one grid step.
func HeartbeatLatest(interval time.Duration) time.Duration {
	return interval + heartbeatGrid(interval)
}
