package share

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Cluster is a store that several Caddy processes share (Redis): for each
// stream key it decides which process reads the upstream (a lease that
// carries a fencing token) and orders the events that every process
// delivers to its own clients. The root package adapts the Redis store to
// it; share knows nothing of Redis.
type Cluster interface {
	// Stream is key's stream in the store, keeping at most maxLen events
	// (about). Cheap; the caller may ask again.
	Stream(key string, maxLen int) ClusterStream
	// Owner names this process in leases (shown by the admin API).
	Owner() string
	// Lease is how long a lease lasts unless renewed.
	Lease() time.Duration
	// FailLocal reports whether a hub whose store is unreachable serves its
	// clients on its own (on_store_failure local) rather than ending them.
	FailLocal() bool
}

// Entry is an event as a cluster store keeps it: its place in the store's
// order (the epoch changes when the store lost its data) and the event.
type Entry struct {
	Epoch  string
	Offset uint64
	ID     string // the upstream's id, "" for none; when !Own, the one inherited (a store may drop it)
	Own    bool   // the event carried the id itself
	Data   []byte // the event's bytes, as clients get them
}

// ErrFenced is what a ClusterStream's writes return once the lease they
// name is no longer held: another process reads the upstream now.
var ErrFenced = errors.New("share: the lease is held by another process")

// ClusterStream is one key's stream in a Cluster. Its methods do network
// I/O: no lock of the hub's is held while calling them. Follow's callbacks
// run on a goroutine of the store that serves every stream of the process:
// they must not block.
type ClusterStream interface {
	// Acquire tries to take the key's lease for this process. When another
	// process holds it, won is false and token is the holder's.
	Acquire(ctx context.Context) (token int64, won bool, err error)
	// Renew extends the lease; held is false once it is another's.
	Renew(ctx context.Context, token int64) (held bool, err error)
	// Release gives the lease up, if it is still this token's.
	Release(ctx context.Context, token int64) error
	// Holder names the process that holds the lease, "" for none.
	Holder(ctx context.Context) (string, error)
	// Append adds an event read under the lease token; ErrFenced when the
	// lease is gone. An event whose id is the last one stored (an upstream
	// that repeats the event it resumed from) is skipped, without error.
	Append(ctx context.Context, token int64, ev Entry) error
	// SetAnswer stores the upstream's answer header for the other
	// processes' clients (fenced as Append).
	SetAnswer(ctx context.Context, token int64, status int, header http.Header) error
	// Answer is the stored answer; ok is false when there is none yet.
	Answer(ctx context.Context) (status int, header http.Header, ok bool, err error)
	// Last is the store's position: its epoch, the newest offset and that
	// event's upstream id.
	Last(ctx context.Context) (epoch string, offset uint64, lastID string, err error)
	// Since returns the entries after the newest one with the upstream id
	// id, and the position after them; ok is false when the store has no
	// such entry (unknown, trimmed, or of an epoch the store lost).
	Since(ctx context.Context, id string) (entries []Entry, epoch string, next uint64, ok bool, err error)
	// Range returns up to count entries after offset in epoch.
	Range(ctx context.Context, epoch string, after uint64, count int) ([]Entry, error)
	// Follow calls deliver with every entry after (epoch, after), once and
	// in order, and answer with each answer stored, until ctx ends or stop
	// is called; it returns at once. A new epoch (the store lost its data)
	// starts over from its first entry. The callbacks run one at a time,
	// on a goroutine of the store's, and must not block; once stop returns
	// none runs.
	Follow(ctx context.Context, epoch string, after uint64, deliver func(Entry), answer func(status int, header http.Header)) (stop func())
}
