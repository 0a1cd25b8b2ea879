package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/share"
)

// owner names this process in the leases it takes (and in the admin API
// of every instance): host, process id and a random part, so that a
// restarted process is never taken for its predecessor.
var owner = func() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}()

// Cluster returns the provisioned store as the share package sees a
// cluster store.
func (st *Store) Cluster() share.Cluster { return cluster{st.client} }

// cluster is a Client as a share.Cluster.
type cluster struct{ c *Client }

func (c cluster) Stream(key string, maxLen int) share.ClusterStream {
	return stream{c.c, c.c.Stream(key, maxLen)}
}
func (c cluster) Owner() string        { return owner }
func (c cluster) Lease() time.Duration { return c.c.Lease() }
func (c cluster) FailLocal() bool      { return c.c.Config().OnStoreFailure != FailError }

// stream is a Stream as a share.ClusterStream: the same calls, with the
// share package's entry type and errors.
type stream struct {
	c *Client
	s *Stream
}

func (s stream) Acquire(ctx context.Context) (int64, bool, error) { return s.s.Acquire(ctx, owner) }
func (s stream) Renew(ctx context.Context, token int64) (bool, error) {
	return s.s.Renew(ctx, token)
}
func (s stream) Release(ctx context.Context, token int64) error { return s.s.Release(ctx, token) }

func (s stream) Holder(ctx context.Context) (string, error) {
	name, _, err := s.s.Holder(ctx)
	return name, err
}

// Append stores an event that does not carry an id (Own false) without
// the id it inherits: to the store, ID is the event's own id. Stored with
// it, the event would be skipped as a replay of the last one, and Since
// would resume after it rather than after the event that set the id. The
// share package gives such an event the inherited id back on delivery.
func (s stream) Append(ctx context.Context, token int64, e share.Entry) error {
	id := e.ID
	if !e.Own {
		id = ""
	}
	_, err := s.s.Append(ctx, token, Entry{ID: id, Own: e.Own, Data: e.Data})
	return shareError(err)
}

func (s stream) SetAnswer(ctx context.Context, token int64, status int, header http.Header) error {
	return shareError(s.s.SetAnswer(ctx, token, status, header))
}

func (s stream) Answer(ctx context.Context) (int, http.Header, bool, error) { return s.s.Answer(ctx) }

func (s stream) Last(ctx context.Context) (string, uint64, string, error) { return s.s.Last(ctx) }

func (s stream) Since(ctx context.Context, id string) ([]share.Entry, string, uint64, bool, error) {
	entries, next, ok, err := s.s.Since(ctx, id)
	return shareEntries(entries), next.Epoch, next.Offset, ok, err
}

func (s stream) Range(ctx context.Context, epoch string, after uint64, count int) ([]share.Entry, error) {
	entries, err := s.s.Range(ctx, epoch, after, count)
	return shareEntries(entries), err
}

func (s stream) Follow(ctx context.Context, epoch string, after uint64, deliver func(share.Entry), answer func(int, http.Header)) func() {
	return s.c.Follow(ctx, s.s, epoch, after, func(e Entry) { deliver(share.Entry(e)) }, answer)
}

// shareError maps the store's errors to the share package's: a skipped
// event is no error there, a fenced write is share.ErrFenced.
func shareError(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrSkipped):
		return nil
	case errors.Is(err, ErrFenced):
		return fmt.Errorf("%w (%v)", share.ErrFenced, err)
	}
	return err
}

func shareEntries(entries []Entry) []share.Entry {
	out := make([]share.Entry, len(entries))
	for i, e := range entries {
		out[i] = share.Entry(e)
	}
	return out
}

// Interface guards
var (
	_ share.Cluster       = cluster{}
	_ share.ClusterStream = stream{}
)
