package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// appendScript appends one event, atomically: fence check, a new epoch if
// Redis has no meta for the stream, skip of an event whose id is the last
// one stored (an upstream replaying the event it resumed from), next
// offset, XADD (entry id "<offset>-0", so a gap is visible), meta update,
// PUBLISH of the whole entry so that followers need no command per event.
// On a running stream that is GET, HMGET, XADD, HSET, PUBLISH: the keys'
// expiry is refreshed by Renew, not here.
// KEYS lease, meta, events, fence. ARGV: token, new epoch, id, own, data,
// maxlen, channel, idle ms.
// Returns {0} fenced, {1, epoch, offset} appended, {2, epoch, offset}
// skipped.
var appendScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^(%d+):') ~= ARGV[1] then return {0} end
local m = redis.call('HMGET', KEYS[2], 'epoch', 'offset', 'last_id')
local epoch, offset, last = m[1], tonumber(m[2]), m[3]
local new = not epoch
if new then
	epoch, offset, last = ARGV[2], 0, false
	redis.call('DEL', KEYS[3])
end
if ARGV[3] ~= '' and ARGV[3] == last then
	return {2, epoch, string.format('%d', offset)}
end
local off = string.format('%d', offset + 1)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], off .. '-0', 'd', ARGV[5], 'i', ARGV[3], 'o', ARGV[4])
if new then
	redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', off, 'last_id', ARGV[3])
	redis.call('PEXPIRE', KEYS[2], ARGV[8])
	redis.call('PEXPIRE', KEYS[3], ARGV[8])
elseif ARGV[3] ~= '' then
	redis.call('HSET', KEYS[2], 'offset', off, 'last_id', ARGV[3])
else
	redis.call('HSET', KEYS[2], 'offset', off)
end
redis.call('PUBLISH', ARGV[7], 'e' .. epoch .. '|' .. off .. '|' .. ARGV[4] .. '|' .. string.len(ARGV[3]) .. '|' .. ARGV[3] .. ARGV[5])
return {1, epoch, off}
`)

// answerScript stores the upstream's answer (status, header as JSON) in
// meta, fenced like an append, with a sequence number, and publishes it.
// KEYS lease, meta, events, fence. ARGV: token, new epoch, status, header,
// channel, idle ms. Returns 0 fenced, 1 stored.
var answerScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^(%d+):') ~= ARGV[1] then return 0 end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
	epoch = ARGV[2]
	redis.call('DEL', KEYS[3])
	redis.call('HSET', KEYS[2], 'epoch', epoch, 'offset', '0')
	redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
local seq = redis.call('HINCRBY', KEYS[2], 'ans', 1)
redis.call('HSET', KEYS[2], 'status', ARGV[3], 'header', ARGV[4])
redis.call('PUBLISH', ARGV[5], 'a' .. epoch .. '|' .. string.format('%d', seq) .. '|' .. ARGV[3] .. '|' .. ARGV[4])
return 1
`)

// Append adds ev (its Epoch and Offset ignored) to the stream if token
// holds the lease, and returns it as stored, with its epoch and offset.
// Errors: ErrFenced when token does not hold the lease (nothing is
// added); ErrSkipped when ev.ID is not "" and equals the last stored id —
// an upstream replaying the event it resumed from — with the returned
// entry carrying the stored stream's epoch and last offset.
func (s *Stream) Append(ctx context.Context, token int64, ev Entry) (Entry, error) {
	own := "0"
	if ev.Own {
		own = "1"
	}
	r, err := appendScript.Run(ctx, s.c.rdb, s.keys, token, newEpoch(), ev.ID, own, ev.Data,
		s.maxLen, s.notify, s.idleMillis()).Slice()
	if err != nil {
		return Entry{}, s.c.fail("append", err)
	}
	code, _ := r[0].(int64)
	if code == 0 {
		s.lost(token)
		return Entry{}, ErrFenced
	}
	if len(r) < 3 {
		return Entry{}, s.c.fail("append", errors.New("unexpected reply"))
	}
	ev.Epoch, _ = r[1].(string)
	off, _ := r[2].(string)
	ev.Offset, _ = strconv.ParseUint(off, 10, 64)
	if code == 2 {
		return ev, ErrSkipped
	}
	metrics.appends.Inc()
	return ev, nil
}

// ErrSkipped is Append's answer for an event whose id is the last one
// stored: nothing was added; the returned entry has the last entry's
// epoch and offset.
var ErrSkipped = errors.New("redis store: event is the last one stored (replayed by the upstream); skipped")

// SetAnswer stores the upstream's answer, status and header, for the
// followers of other instances (Answer, and Follow's answer callback), if
// token holds the lease; ErrFenced otherwise. The caller strips what must
// not be shared (Set-Cookie) first.
func (s *Stream) SetAnswer(ctx context.Context, token int64, status int, header http.Header) error {
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	n, err := answerScript.Run(ctx, s.c.rdb, s.keys, token, newEpoch(), status, h, s.notify, s.idleMillis()).Int64()
	if err != nil {
		return s.c.fail("set answer", err)
	}
	if n == 0 {
		s.lost(token)
		return ErrFenced
	}
	return nil
}
