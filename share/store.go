package share

import "github.com/sse-proxy/caddy-sse-proxy/buffer"

// Store orders the events of one hub. It sits between the two sides of
// the hub's event path: the upstream side (the hub's sink, which
// publishes each complete event the upstream sends) and the delivery side
// (the hub's deliver function, which adds an event to the hub's History
// and to every client's queue). Each hub has a Store of its own, made with
// the hub and given its deliver function.
//
// Threading rules:
//
//   - Append is called only from the hub's upstream goroutine, one event at
//     a time, with no lock of this package held. It must not block for
//     long: the upstream waits for it (an upstream that is faster than the
//     store is slowed down, not buffered without bound).
//   - ev.Data belongs to the store once Append is called: nobody modifies
//     it afterwards, and the store may keep it or hand it on as it is.
//   - The store calls deliver for every event it orders, exactly once, in
//     its order, and never two calls at once. It may do so from inside
//     Append, on the upstream goroutine (the memory store), or later, from
//     a goroutine of its own, in an order of its own (a store that orders
//     the events of several processes). deliver takes Hub.mu and Sub.mu
//     and never blocks on a client; the store must hold no lock that
//     Append takes while it calls deliver, or a slow delivery would hold
//     up the upstream.
//   - Close is called once, when the hub is over, with no lock of this
//     package held, from the goroutine that ends the hub (its upstream
//     goroutine, after the last Append). Once Close returns, deliver is not
//     called again and every goroutine the store started has stopped.
type Store interface {
	Append(ev buffer.Event)
	Close()
}
