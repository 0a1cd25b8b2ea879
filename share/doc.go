// Package share serves many identical event-stream subscriptions from one
// upstream stream: a hub per key runs the upstream request in the
// background (through the next handler, so reverse_proxy's load balancing
// and health checks apply), keeps recent events for Last-Event-ID replay,
// and fans events out to a bounded queue per client.
//
// Hubs live in a package-level registry, so they outlive config reloads:
// clients that a reload ends come back to the same running upstream stream.
// caddy.UsagePool is not used because it destroys a value as soon as its
// last reference goes, while a hub must linger for quick reconnects.
//
// # Following one client
//
// Serve (serve.go) is the whole life of a shared client: Join (registry.go)
// finds or starts its hub (hub.go), the client waits for the upstream's
// answer, then is either kept by its handler goroutine (serve.go) or, on
// HTTP/1.x, taken over with its connection (takeover.go). Either way one
// loop, drain (drain.go), writes what the hub queued for it
// (subscription.go) until it leaves, is evicted as too slow (evict.go) or
// the hub is over. Events go from the upstream (sink.go) through the hub's
// Store (store.go, store_memory.go) to the hub's delivery (deliver.go),
// which adds them to its History (history.go) and every client's queue.
//
// # Locks
//
// Three locks of this package, always taken in this order, never the other
// way:
//
//	registryMu → Hub.mu → Sub.mu
//
// None of them is held across network I/O, with one exception: Sub.mu is
// held while an evicted client's connection is cut (a write deadline in the
// past, or a close; see Sub.cut), which does not wait for the client.
//
// proxy.Writer has a lock of its own, Writer.mu, which it holds while it
// writes to the network: a write to a client that stopped reading holds it
// until the write fails. There are two kinds of Writer here:
//
//   - A client's Writer: this package never calls it while holding a lock
//     of its own, and it never calls into this package while holding
//     Writer.mu. Its Writer.mu is outside the order above: a stuck client
//     holds up only its own drainer, never the hub, the registry or another
//     client. What unblocks a stuck write is closing the connection or a
//     write deadline, which take no Writer.mu; that is why eviction cuts
//     the connection (Sub.OnEvict) instead of asking the writer.
//   - A hub's upstream Writer (see Hub.run): it writes into the hub's sink
//     while holding its Writer.mu, and the sink takes registryMu (the
//     answer) and Hub.mu (delivery). That Writer.mu comes first:
//     upstream Writer.mu → registryMu → Hub.mu → Sub.mu. It writes to no
//     network, only to the sink.
package share
