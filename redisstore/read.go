package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Last returns the stream's epoch, its last offset and the last upstream
// id stored; epoch is "" when Redis has no such stream.
func (s *Stream) Last(ctx context.Context) (epoch string, offset uint64, lastID string, err error) {
	v, err := s.c.rdb.HMGet(ctx, s.meta, "epoch", "offset", "last_id").Result()
	if err != nil {
		return "", 0, "", s.c.fail("last", err)
	}
	epoch, _ = v[0].(string)
	o, _ := v[1].(string)
	offset, _ = strconv.ParseUint(o, 10, 64)
	lastID, _ = v[2].(string)
	return epoch, offset, lastID, nil
}

// Answer returns the upstream's answer that the holder stored with
// SetAnswer; ok is false when none is stored.
func (s *Stream) Answer(ctx context.Context) (status int, header http.Header, ok bool, err error) {
	v, err := s.c.rdb.HMGet(ctx, s.meta, "status", "header").Result()
	if err != nil {
		return 0, nil, false, s.c.fail("answer", err)
	}
	st, _ := v[0].(string)
	h, _ := v[1].(string)
	if st == "" {
		return 0, nil, false, nil
	}
	status, header, err = parseAnswer(st, h)
	if err != nil {
		return 0, nil, false, s.c.fail("answer", err)
	}
	return status, header, true, nil
}

// parseAnswer decodes a stored status and header.
func parseAnswer(status, header string) (int, http.Header, error) {
	st, err := strconv.Atoi(status)
	if err != nil {
		return 0, nil, fmt.Errorf("stored status %q", status)
	}
	var h http.Header
	if err := json.Unmarshal([]byte(header), &h); err != nil {
		return 0, nil, fmt.Errorf("stored header: %w", err)
	}
	return st, h, nil
}

// Range returns up to count entries after offset after of epoch, in offset
// order; ErrEpoch when the stream's epoch is another one (or Redis has no
// such stream); count 0 or less: all of them. Entries trimmed from the stream are missing: the first
// entry's offset may be more than after+1.
func (s *Stream) Range(ctx context.Context, epoch string, after uint64, count int) ([]Entry, error) {
	snap, err := s.read(ctx, after, count)
	if err != nil {
		return nil, err
	}
	if snap.epoch != epoch {
		return nil, fmt.Errorf("%w: %q, not %q", ErrEpoch, snap.epoch, epoch)
	}
	return snap.entries, nil
}

// snapshot is what read returns: the meta fields and the entries, read in
// one transaction.
type snapshot struct {
	epoch   string
	ansSeq  int64
	status  string
	header  string
	entries []Entry // after the offset asked for, in the snapshot's epoch
}

// read returns the stream's epoch and answer and up to count entries
// after offset after, atomically (MULTI: HMGET, XRANGE).
func (s *Stream) read(ctx context.Context, after uint64, count int) (snapshot, error) {
	var meta *redis.SliceCmd
	var xr *redis.XMessageSliceCmd
	_, err := s.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		meta = p.HMGet(ctx, s.meta, "epoch", "ans", "status", "header")
		start := strconv.FormatUint(after+1, 10)
		if count > 0 {
			xr = p.XRangeN(ctx, s.events, start, "+", int64(count))
		} else {
			xr = p.XRange(ctx, s.events, start, "+")
		}
		return nil
	})
	if err != nil {
		return snapshot{}, s.c.fail("range", err)
	}
	v := meta.Val()
	var snap snapshot
	snap.epoch, _ = v[0].(string)
	a, _ := v[1].(string)
	snap.ansSeq, _ = strconv.ParseInt(a, 10, 64)
	snap.status, _ = v[2].(string)
	snap.header, _ = v[3].(string)
	if snap.epoch == "" {
		return snap, nil
	}
	msgs := xr.Val()
	snap.entries = make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := entryOf(snap.epoch, m.ID, m.Values)
		if err != nil {
			return snapshot{}, s.c.fail("range", err)
		}
		snap.entries = append(snap.entries, e)
	}
	return snap, nil
}

// entryOf makes an Entry from a stream entry's id "<offset>-0" and fields.
func entryOf(epoch, id string, f map[string]any) (Entry, error) {
	o, _, _ := strings.Cut(id, "-")
	off, err := strconv.ParseUint(o, 10, 64)
	if err != nil {
		return Entry{}, fmt.Errorf("stream entry id %q", id)
	}
	d, _ := f["d"].(string)
	i, _ := f["i"].(string)
	own, _ := f["o"].(string)
	return Entry{Epoch: epoch, Offset: off, ID: i, Own: own == "1", Data: []byte(d)}, nil
}

// sinceScript finds the newest entry whose upstream id is ARGV[1],
// scanning back from the newest entry in chunks of ARGV[2] (the scan is
// bounded by the stream's length, which MAXLEN caps), and returns the
// epoch, the found entry's id and the entries after it: {epoch, id,
// entries} or {epoch} when the id is not in the stream, {} when there is
// no stream. KEYS meta, events.
var sinceScript = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {} end
local hi = '+'
local chunk = tonumber(ARGV[2])
while true do
	local batch = redis.call('XREVRANGE', KEYS[2], hi, '-', 'COUNT', chunk)
	for _, e in ipairs(batch) do
		local f = e[2]
		for k = 1, #f, 2 do
			if f[k] == 'i' then
				if f[k + 1] == ARGV[1] then
					return {epoch, e[1], redis.call('XRANGE', KEYS[2], '(' .. e[1], '+')}
				end
				break
			end
		end
	end
	if #batch < chunk then return {epoch} end
	hi = '(' .. batch[#batch][1]
end
`)

// Since returns the entries after the newest entry whose upstream id is
// id, and the position after them (Follow from there to go on without a
// gap or a duplicate). ok is false when the stream does not hold id
// (unknown, trimmed, or from an epoch Redis lost).
func (s *Stream) Since(ctx context.Context, id string) (entries []Entry, next Position, ok bool, err error) {
	if id == "" {
		metrics.replayMisses.Inc()
		return nil, Position{}, false, nil
	}
	r, err := sinceScript.Run(ctx, s.c.rdb, []string{s.meta, s.events}, id, 256).Slice()
	if err != nil {
		return nil, Position{}, false, s.c.fail("since", err)
	}
	if len(r) < 3 {
		metrics.replayMisses.Inc()
		return nil, Position{}, false, nil
	}
	epoch, _ := r[0].(string)
	found, _ := r[1].(string)
	at, err := entryOf(epoch, found, nil)
	if err != nil {
		return nil, Position{}, false, s.c.fail("since", err)
	}
	raw, _ := r[2].([]any)
	entries = make([]Entry, 0, len(raw))
	next = Position{Epoch: epoch, Offset: at.Offset}
	for _, x := range raw {
		e, err := rawEntry(epoch, x)
		if err != nil {
			return nil, Position{}, false, s.c.fail("since", err)
		}
		entries = append(entries, e)
		next.Offset = e.Offset
	}
	metrics.replayHits.Inc()
	return entries, next, true, nil
}

// rawEntry decodes an entry of a script's XRANGE reply: {id, {f, v, ...}}.
func rawEntry(epoch string, x any) (Entry, error) {
	pair, _ := x.([]any)
	if len(pair) != 2 {
		return Entry{}, errors.New("unexpected stream entry")
	}
	id, _ := pair[0].(string)
	flat, _ := pair[1].([]any)
	f := make(map[string]any, len(flat)/2)
	for k := 0; k+1 < len(flat); k += 2 {
		name, _ := flat[k].(string)
		f[name] = flat[k+1]
	}
	return entryOf(epoch, id, f)
}

// Len returns how many entries the stream holds (its replay depth).
func (s *Stream) Len(ctx context.Context) (int64, error) {
	n, err := s.c.rdb.XLen(ctx, s.events).Result()
	if err != nil {
		return 0, s.c.fail("len", err)
	}
	return n, nil
}
