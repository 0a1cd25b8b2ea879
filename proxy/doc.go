// Package proxy makes a live text/event-stream response right for browsers:
// the SSE-aware ResponseWriter (flushing, heartbeats between events, header
// hygiene, ending with a retry field), request shaping (injected auth
// headers, token stripping, Last-Event-ID from the query), the CORS policy
// and the upstream reconnect loop.
//
// # Threading
//
// A Writer is used by the handler's goroutine (the next handler's writes),
// its own heartbeat and end-grace timer, reverse_proxy's flush timer, and
// whoever ends streams (max_age timers, Streams.EndAll on reload and
// shutdown, share's drain loops). Its lock, Writer.mu, is held during
// network writes: a client that stopped reading holds it until its write
// fails. Code that must not wait for that does not wait on it (End uses
// TryLock and cuts a stuck client off through Writer.cut, which has a lock
// of its own).
//
// # Locks and their order
//
// Within this package, a lock is only ever taken after those above it, and
// none is held while one above it is taken:
//
//	Writer.mu       the stream's state and its writes; held during network writes
//	  cutState.mu   how to cut the client off (Writer.cut); no blocking I/O
//	  Streams.mu    the set of open streams; no I/O (EndAll ends streams after releasing it)
//	Revisit.mu      a stream's cookie jar; no I/O; taken with no other lock held
//
// Writer.mu is also taken before any lock of the writer it writes to:
// across packages, it comes before share's hub locks, which the shared
// path's sink takes inside a Write of the hub's own Writer. Options, Shaper, CORS and Reconnect
// are read-only once in use; RateLog and Metrics are safe for concurrent use
// without a lock of this package.
package proxy
