package buffer

import "time"

// Event is one complete event as relayed: its raw bytes (including the
// terminating empty line), the stream's last event id after it (the id in
// effect, which persists across events without an id line), whether the
// event's own block set that id (OwnID), and when it was added.
type Event struct {
	Data  []byte
	ID    string
	OwnID bool
	At    time.Time
}

// ReplayLimits bound a Replay. Zero fields mean no bound of that kind, but
// MaxBytes must be > 0.
type ReplayLimits struct {
	MaxEvents int
	MaxAge    time.Duration
	MaxBytes  int
}

// minRing is the capacity a Replay's ring starts with on its first Add.
const minRing = 16

// Replay is a ring of recent events, bounded by count, age and bytes, from
// which a client that reconnects with a Last-Event-ID gets the events it
// missed. The bytes counted are those of the events' Data.
//
// It is not safe for concurrent use (the caller locks).
type Replay struct {
	lim   ReplayLimits
	ring  []Event // len(ring) is the capacity; slots outside the window are zero
	head  int     // index of the oldest event
	n     int     // number of events held
	bytes int     // sum of len(Data) over the events held
}

// NewReplay returns an empty Replay bounded by l. It panics when l.MaxBytes
// is not positive or another field is negative: these are programming
// errors, limits are validated when the configuration is loaded.
func NewReplay(l ReplayLimits) *Replay {
	if l.MaxBytes <= 0 || l.MaxEvents < 0 || l.MaxAge < 0 {
		panic("buffer: invalid ReplayLimits")
	}
	return &Replay{lim: l}
}

// Len reports the number of events held.
func (r *Replay) Len() int { return r.n }

// Bytes reports the total length of the Data of the events held.
func (r *Replay) Bytes() int { return r.bytes }

// at returns the ring index of the i-th oldest event, 0 <= i < len(r.ring).
func (r *Replay) at(i int) int {
	j := r.head + i
	if j >= len(r.ring) {
		j -= len(r.ring)
	}
	return j
}

// Add appends e (Data is retained, not copied: the caller passes a slice it
// will not reuse), then evicts the oldest events until every bound holds
// again. An event larger than MaxBytes on its own is not kept at all, and
// everything older is dropped too, since the sequence would have a hole
// otherwise. now is for MaxAge.
func (r *Replay) Add(e Event, now time.Time) {
	if len(e.Data) > r.lim.MaxBytes {
		r.clear()
		return
	}
	if r.lim.MaxEvents > 0 && r.n == r.lim.MaxEvents {
		r.dropOldest()
	}
	if r.n == len(r.ring) {
		r.grow()
	}
	r.ring[r.at(r.n)] = e
	r.n++
	r.bytes += len(e.Data)
	for r.bytes > r.lim.MaxBytes {
		r.dropOldest()
	}
	r.expire(now)
}

// After returns the events that follow the newest event whose OwnID is true
// and whose ID equals id, oldest first, and true; or nil and false when no
// such event is in the buffer (unknown or too old). Events older than MaxAge
// at now are dropped first. On a match the slice is fresh and non-nil (empty
// when the match is the newest event); the Data slices alias the buffer's
// and must not be modified.
func (r *Replay) After(id string, now time.Time) ([]Event, bool) {
	r.expire(now)
	for i := r.n - 1; i >= 0; i-- {
		e := &r.ring[r.at(i)]
		if !e.OwnID || e.ID != id {
			continue
		}
		out := make([]Event, r.n-1-i)
		for k := range out {
			out[k] = r.ring[r.at(i+1+k)]
		}
		return out, true
	}
	return nil, false
}

// expire drops the oldest events while they are older than MaxAge at now.
// Events are added in time order, so it stops at the first one that is not.
func (r *Replay) expire(now time.Time) {
	if r.lim.MaxAge <= 0 {
		return
	}
	for r.n > 0 && now.Sub(r.ring[r.head].At) > r.lim.MaxAge {
		r.dropOldest()
	}
}

// dropOldest evicts the oldest event; r.n must be > 0. The slot is zeroed so
// that the ring does not keep the event's Data alive.
func (r *Replay) dropOldest() {
	e := &r.ring[r.head]
	r.bytes -= len(e.Data)
	*e = Event{}
	r.head++
	if r.head == len(r.ring) {
		r.head = 0
	}
	r.n--
}

// clear evicts every event, keeping the ring for reuse.
func (r *Replay) clear() {
	for r.n > 0 {
		r.dropOldest()
	}
	r.head = 0
}

// grow enlarges the full ring, doubling it up to MaxEvents, and moves the
// events to the front of the new one in order.
func (r *Replay) grow() {
	c := 2 * len(r.ring)
	if c < minRing {
		c = minRing
	}
	if r.lim.MaxEvents > 0 && c > r.lim.MaxEvents {
		c = r.lim.MaxEvents
	}
	ring := make([]Event, c)
	k := copy(ring, r.ring[r.head:])
	copy(ring[k:], r.ring[:r.head])
	r.ring, r.head = ring, 0
}
