package share

import (
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
)

// History is a hub's record of recent events, for clients that resume
// with Last-Event-ID. *buffer.Replay is the one implementation: an
// in-process ring bounded by count, bytes and age.
//
// Threading rules: both methods are called with Hub.mu held — Add from the
// delivery side (deliver), in delivery order; After when a client joins —
// so an implementation needs no lock of its own, and must not block or do
// network I/O. Add keeps e.Data as it is (not copied; nobody modifies it).
// After returns a slice of its own, whose events' Data the caller only
// reads, and false when id is unknown or too old.
type History interface {
	Add(e buffer.Event, now time.Time)
	After(id string, now time.Time) ([]buffer.Event, bool)
}

var _ History = (*buffer.Replay)(nil)
