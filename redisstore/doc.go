// Package redisstore keeps shared streams in Redis, so that a cluster of
// Caddy instances behaves like one proxy: one upstream reader per stream
// key across the cluster (a lease with a fencing token), one sequence of
// entries that every instance delivers in the same order (a Redis stream
// numbered by offset), and replay by Last-Event-ID from any instance.
// Leases, ordering and history are Redis's own primitives; there is no
// protocol of our own. Redis 6.2 or newer, or Valkey; scripts run with
// EVALSHA (no FUNCTION), and every key of a stream carries one hash tag, so
// a Redis Cluster keeps them on one slot.
//
// # Roles
//
// The instance that wins a stream's lease (Stream.Acquire) reads the
// upstream, stores its answer (SetAnswer) and appends each event (Append),
// renewing the lease every third of its length (Renew) and releasing it
// when its last client leaves (Release). Its writes carry the lease's
// token: once the lease expired or went to another instance, they fail
// with ErrFenced and change nothing, so a paused or cut-off holder cannot
// write after its successor. Every instance, the holder too, delivers
// through Client.Follow: subscribe to the stream's channel first, read
// what it missed from the stream, then take the live entries, each once,
// in offset order.
//
// # Cost
//
// An Append is one EVALSHA running GET, HMGET, XADD, HSET and PUBLISH: 6
// commands in Redis's commandstats, whatever the number of instances and
// clients. Its notification carries the whole entry, so a follower sends
// no command per event; it reads the stream only when it starts, on a gap,
// on a new epoch and after a reconnection. Every Client has one pub/sub
// connection for all the streams it follows, and one dispatcher goroutine.
//
// # Failures
//
// Commands time out after a third of the lease (3s at most) or the
// caller's deadline, whichever comes first, and are not retried (a retried
// append could append twice); callers retry at their pace. Errors are
// counted (store_errors_total) and logged at most once a second. When Redis
// loses a stream (restart without persistence, expiry), the next write
// starts a new epoch at offset 1, and followers move to it. Keys of a
// stream nobody writes to expire max(1h, 10 × lease) after the last
// Acquire, Renew or new epoch. Passwords and usernames never reach logs,
// metrics or error texts.
package redisstore
