package redisstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
)

// Errors a Stream's methods return (wrapped: test with errors.Is).
var (
	// ErrFenced: the caller's lease token is not the stream's current one
	// (the lease expired or another instance holds it); nothing was
	// written. The caller must stop reading the upstream.
	ErrFenced = errors.New("redis store: lease lost (fenced)")
	// ErrEpoch: the stream's epoch is not the one asked for (Redis lost
	// the stream, or it expired, and a new one began).
	ErrEpoch = errors.New("redis store: stream epoch changed")
)

// Entry is one event in a stream.
type Entry struct {
	Epoch  string // the stream's epoch: random, new whenever Redis lost the stream
	Offset uint64 // 1, 2, 3... within the epoch, one per appended event
	ID     string // the upstream's event id ("" for an event without one)
	Own    bool   // the caller's flag, stored and returned as given (e.g. an id the proxy numbered)
	Data   []byte // the event as the caller framed it
}

// Position is a place in a stream: the entries after Offset in Epoch come
// next.
type Position struct {
	Epoch  string
	Offset uint64
}

// Stream is one shared stream's keys in Redis. Make one with
// (*Client).Stream; it is safe for concurrent use.
//
// Keys (one hash tag per stream, so a Redis Cluster keeps them on one
// slot):
//
//	<prefix>:{<h>}:lease   string "<token>:<owner>", PX lease
//	<prefix>:{<h>}:fence   counter the tokens come from
//	<prefix>:{<h>}:meta    hash: epoch, offset, last_id, ans, status, header
//	<prefix>:{<h>}:events  stream of entries, id "<offset>-0", fields d, i, o
//	<prefix>:{<h>}:notify  pub/sub channel (not a key)
//
// where h is the first 16 hex digits of the SHA-256 of the stream's key.
// Every key but the lease lives for idle (max(1h, 10 × lease)) after the
// last Acquire, Renew or new epoch, so keys of a stream nobody reads expire.
type Stream struct {
	c                                  *Client
	hash                               string
	maxLen                             string // decimal, for XADD MAXLEN ~
	keys                               []string
	lease, meta, events, fence, notify string

	held atomic.Int64 // the token this process holds, 0 if none; counts a lost lease once
}

// Stream returns the stream for key (any string, e.g. the share key),
// keeping about maxLen entries (at least 1; Redis trims approximately, in
// whole nodes of ~100 entries).
func (c *Client) Stream(key string, maxLen int) *Stream {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:8])
	base := c.cfg.KeyPrefix + ":{" + h + "}:"
	s := &Stream{
		c:      c,
		hash:   h,
		maxLen: strconv.Itoa(max(maxLen, 1)),
		lease:  base + "lease",
		meta:   base + "meta",
		events: base + "events",
		fence:  base + "fence",
		notify: base + "notify",
	}
	s.keys = []string{s.lease, s.meta, s.events, s.fence}
	return s
}

// Hash is the stream's key hash, as the Redis keys carry it.
func (s *Stream) Hash() string { return s.hash }

// idleMillis is how long the keys of a stream nobody writes to live.
func (s *Stream) idleMillis() int64 {
	return max(time.Hour, 10*s.c.lease).Milliseconds()
}

// newEpoch returns a random epoch: 16 hex digits.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
