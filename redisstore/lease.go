package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The lease scripts take KEYS lease, meta, events, fence.

// acquireScript sets the lease if nobody holds it, with a token one higher
// than any before it. A failed attempt burns no token. A fence counter that
// is new (first lease, or Redis lost it) starts at the server's time in
// microseconds, so a token handed out before Redis restarted empty is never
// handed out again, and a zombie holder of it stays fenced.
// ARGV: owner, lease ms, idle ms. Returns {0, holder} or {1, token, had
// entries}.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {0, v} end
local t = redis.call('INCR', KEYS[4])
if t == 1 then
	local now = redis.call('TIME')
	t = tonumber(now[1]) * 1000000 + tonumber(now[2])
	redis.call('SET', KEYS[4], string.format('%d', t))
end
local tok = string.format('%d', t)
redis.call('SET', KEYS[1], tok .. ':' .. ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
local had = redis.call('EXISTS', KEYS[3])
if had == 1 then
	redis.call('PEXPIRE', KEYS[2], ARGV[3])
	redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return {1, tok, had}
`)

// renewScript extends the lease if the token still holds it, and the
// idle expiry of the stream's keys. ARGV: token, lease ms, idle ms.
var renewScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^(%d+):') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
return 1
`)

// releaseScript deletes the lease if the token holds it. ARGV: token.
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.match(v, '^(%d+):') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// Acquire tries to take the stream's lease for owner (any string naming
// this instance, shown by Holder). won reports whether it did; token is
// then the fencing token every write of the holder carries, and the lease
// lasts Client.Lease unless renewed. While someone else holds it, won is
// false and token is theirs.
func (s *Stream) Acquire(ctx context.Context, owner string) (token int64, won bool, err error) {
	r, err := acquireScript.Run(ctx, s.c.rdb, s.keys, owner, s.c.lease.Milliseconds(), s.idleMillis()).Slice()
	if err != nil {
		return 0, false, s.c.fail("acquire", err)
	}
	if len(r) < 2 {
		return 0, false, s.c.fail("acquire", errors.New("unexpected reply"))
	}
	if n, _ := r[0].(int64); n == 0 {
		v, _ := r[1].(string)
		_, token = parseLease(v)
		return token, false, nil
	}
	ts, _ := r[1].(string)
	token, err = strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return 0, false, s.c.fail("acquire", errors.New("unexpected token"))
	}
	s.held.Store(token)
	metrics.leasesWon.Inc()
	if had, _ := r[2].(int64); had == 1 {
		metrics.failovers.Inc()
	}
	return token, true, nil
}

// Renew extends the lease that token holds by Client.Lease. held is false
// when the lease expired or someone else holds it: the caller must stop
// reading the upstream. Call it every third of the lease; an error (Redis
// unreachable) leaves the lease to expire unless a later Renew succeeds in
// time.
func (s *Stream) Renew(ctx context.Context, token int64) (held bool, err error) {
	n, err := renewScript.Run(ctx, s.c.rdb, s.keys, token, s.c.lease.Milliseconds(), s.idleMillis()).Int64()
	if err != nil {
		return false, s.c.fail("renew", err)
	}
	if n == 0 {
		s.lost(token)
		return false, nil
	}
	return true, nil
}

// Release ends the lease that token holds, so that another instance can
// take over at once; it does nothing when token no longer holds it.
func (s *Stream) Release(ctx context.Context, token int64) error {
	s.held.CompareAndSwap(token, 0)
	if err := releaseScript.Run(ctx, s.c.rdb, s.keys, token).Err(); err != nil {
		return s.c.fail("release", err)
	}
	return nil
}

// Holder returns the lease's owner and token; owner is "" when nobody
// holds it.
func (s *Stream) Holder(ctx context.Context) (owner string, token int64, err error) {
	v, err := s.c.rdb.Get(ctx, s.lease).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, s.c.fail("holder", err)
	}
	owner, token = parseLease(v)
	return owner, token, nil
}

// lost counts the loss of the lease token held, once.
func (s *Stream) lost(token int64) {
	if s.held.CompareAndSwap(token, 0) {
		metrics.leasesLost.Inc()
	}
}

// parseLease splits a lease value "<token>:<owner>".
func parseLease(v string) (owner string, token int64) {
	t, owner, _ := strings.Cut(v, ":")
	token, _ = strconv.ParseInt(t, 10, 64)
	return owner, token
}
