package share

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sse-proxy/caddy-sse-proxy/buffer"
	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// role is what a hub's process does for its key in a cluster.
type role uint8

const (
	// follower: another process reads the upstream; events come from
	// the store.
	follower role = iota
	// holder: this process holds the lease and reads the upstream,
	// appending each event to the store; its own clients get the events
	// from the store too, in the store's order, as everyone's do.
	holder
	// local: the store is unreachable (on_store_failure local): this
	// process reads the upstream for its own clients, as without a store,
	// until the store answers again.
	local
)

func (r role) String() string {
	switch r {
	case holder:
		return "holder"
	case local:
		return "local"
	}
	return "follower"
}

// link is a hub's part in a cluster, and the hub's Store. Its goroutine
// (run, started by the hub and ended by the hub's context; Close waits for
// it) competes for the key's lease; while it holds it, it runs the hub's
// upstream request, whose sink appends through Append. The store's
// follower (Follow) delivers the store's events to the hub in the store's
// order, whoever read them: this process's own too.
type link struct {
	hub *Hub
	cl  Cluster
	st  ClusterStream

	done chan struct{} // closed when run returns

	// deliverMu serializes the link's calls of the hub's deliver (a
	// Store's rule: never two at once): Follow's callback and, in local
	// mode, the upstream goroutine's Append. Held while queueing, never
	// across network I/O; taken before Hub.mu, and after the store's own
	// lock: Follow's callbacks run under it (redisstore's follower.mu), so
	// no store call is made with deliverMu, registryMu or Hub.mu held.
	deliverMu sync.Mutex

	// mu guards the fields below; never held across network I/O. Lock
	// order: Hub.mu → link.mu (info reads both).
	mu    sync.Mutex
	role  role
	token int64
	lost  context.CancelFunc // ends the current upstream read
	// holderName and holderToken are the lease's holder as last seen,
	// for the admin API.
	holderName  string
	holderToken int64
}

// storeLog rate-limits the lines about an unreachable or refusing store,
// across hubs.
var storeLog proxy.RateLog

func newLink(h *Hub, cl Cluster) *link {
	return &link{hub: h, cl: cl, st: cl.Stream(h.key, h.cfg.Replay.MaxEvents), done: make(chan struct{})}
}

func (l *link) current() (role, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.role, l.token
}

func (l *link) set(r role, token int64, lost context.CancelFunc) {
	l.mu.Lock()
	l.role, l.token, l.lost = r, token, lost
	if r == holder {
		l.holderName, l.holderToken = l.cl.Owner(), token
	}
	l.mu.Unlock()
}

// Append is the way in of the hub's sink: under the lease the event goes
// to the store (and comes back to every hub of the key, this one too,
// through Follow); in local mode it goes to the hub's clients at once. A
// refused append (fenced, or the store gone) ends the upstream read: an
// event nobody stored must not reach only some clients.
func (l *link) Append(ev buffer.Event) {
	r, token := l.current()
	switch r {
	case local:
		l.deliverMu.Lock()
		if r, _ := l.current(); r == local {
			l.hub.deliver(ev)
		}
		l.deliverMu.Unlock()
		return
	case follower:
		return // a read that outlived its lease: none of it counts
	}
	ctx, cancel := context.WithTimeout(l.hub.ctx, l.cl.Lease())
	err := l.st.Append(ctx, token, Entry{ID: ev.ID, Own: ev.OwnID, Data: ev.Data})
	cancel()
	if err != nil {
		l.drop("appending an event", err)
	}
}

// Close ends run (through the hub's context) and waits for it.
func (l *link) Close() {
	l.hub.cancel()
	<-l.done
}

// answered stores the upstream's answer for the other processes' clients,
// when this process reads it under the lease and it is a stream.
func (l *link) answered(status int, header http.Header, stream bool) {
	r, token := l.current()
	if r != holder || !stream {
		return
	}
	h := header.Clone()
	h.Del("Set-Cookie") // the starter's own (see Hub.Answer)
	ctx, cancel := context.WithTimeout(l.hub.ctx, l.cl.Lease())
	defer cancel()
	if err := l.st.SetAnswer(ctx, token, status, h); err != nil {
		l.drop("storing the answer", err)
	}
}

// drop ends the upstream read after a refused write.
func (l *link) drop(op string, err error) {
	l.mu.Lock()
	lost := l.lost
	if l.role == holder {
		l.role = follower
	}
	l.mu.Unlock()
	if lost != nil {
		lost()
	}
	l.storeError(op, err)
}

// storeError logs a failed store call, once a second at most.
func (l *link) storeError(op string, err error) {
	if l.hub.ctx.Err() != nil {
		return // the hub is over: its calls are cancelled
	}
	level, msg := zapcore.WarnLevel, "shared stream store: "+op+" failed"
	if errors.Is(err, ErrFenced) {
		level, msg = zapcore.InfoLevel, "shared stream store: the lease went to another instance; it reads the upstream now"
	}
	storeLog.Log(l.hub.cfg.Logger, level, msg, zap.String("key_hash", keyHash(l.hub.key)), zap.Error(err))
}

// run competes for the lease until the hub ends. It follows the store from
// its end, and whenever it wins the lease it reads the upstream, resuming
// it from the last id stored. It returns (and the hub closes) when the
// hub's context ends, the upstream gives a final answer or gives up, or
// the store fails with on_store_failure error.
func (l *link) run() {
	defer close(l.done)
	ctx := l.hub.ctx
	lease := l.cl.Lease()
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for ctx.Err() == nil {
		if stop == nil {
			s, err := l.follow(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return // the hub ended: its call was cancelled
				}
				l.storeError("reading the stream's position", err)
				if !l.goLocal(ctx) {
					return
				}
				continue
			}
			stop = s
		}
		c, cancel := context.WithTimeout(ctx, lease)
		token, won, err := l.st.Acquire(c)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return // the hub ended: its call was cancelled
		case err != nil:
			l.storeError("taking the lease", err)
			if !l.goLocal(ctx) {
				return
			}
		case won:
			if over := l.lead(ctx, token); over {
				return
			}
		default:
			l.seeHolder(ctx, token)
			// Try again well before the holder's lease would run out: a
			// dead holder's clients get events again within the lease and
			// this wait.
			wait := min(lease/4, time.Second)
			select {
			case <-time.After(wait/2 + rand.N(wait/2+1)):
			case <-ctx.Done():
			}
		}
	}
}

// follow starts following the store from its end, giving the hub the
// stored answer, if any.
func (l *link) follow(ctx context.Context) (stop func(), err error) {
	c, cancel := context.WithTimeout(ctx, l.cl.Lease())
	defer cancel()
	epoch, off, _, err := l.st.Last(c)
	if err != nil {
		return nil, err
	}
	l.hub.follows(position{epoch: epoch, offset: off})
	answer := func(status int, header http.Header) { l.hub.answer(status, header, true) }
	return l.st.Follow(ctx, epoch, off, l.deliver, answer), nil
}

// seeHolder notes who holds the lease, asking the store only when the
// holder's token changed.
func (l *link) seeHolder(ctx context.Context, token int64) {
	l.mu.Lock()
	known := l.holderToken == token
	l.mu.Unlock()
	if known {
		return
	}
	c, cancel := context.WithTimeout(ctx, l.cl.Lease())
	name, err := l.st.Holder(c)
	cancel()
	if err == nil {
		l.mu.Lock()
		l.holderName, l.holderToken = name, token
		l.mu.Unlock()
	}
}

// lead reads the upstream under the lease token until the lease is lost,
// the hub ends, or the upstream gives up or answers finally (over).
func (l *link) lead(ctx context.Context, token int64) (over bool) {
	lease := l.cl.Lease()
	c, cancel := context.WithTimeout(ctx, lease)
	_, _, lastID, err := l.st.Last(c)
	cancel()
	if err != nil {
		l.storeError("reading the last id", err)
		// Give the lease back: kept unread, nobody would read the
		// upstream until it runs out.
		c, cancel = context.WithTimeout(context.WithoutCancel(ctx), lease)
		_ = l.st.Release(c, token)
		cancel()
		// And wait before competing again, as a follower would: a store
		// that answers one command and not the next is not asked in a
		// busy loop.
		select {
		case <-time.After(min(lease/4, time.Second)):
		case <-ctx.Done():
		}
		return false
	}
	if lastID == "" {
		// A store that lost its data (a new epoch) knows no position:
		// resume from what this process's clients got, if anything.
		lastID = l.hub.lastDeliveredID()
	}
	readCtx, lost := context.WithCancel(ctx)
	defer lost()
	l.set(holder, token, lost)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		l.renew(readCtx, token, lost)
	}()
	over = l.hub.readUpstream(readCtx, lastID)
	lost()
	<-renewed
	l.set(follower, 0, nil)
	c, cancel = context.WithTimeout(context.WithoutCancel(ctx), lease)
	_ = l.st.Release(c, token)
	cancel()
	return over
}

// renew keeps the lease until ctx ends. When it cannot — another process
// has it, or the store did not answer for two thirds of the lease — lost
// ends the upstream read.
func (l *link) renew(ctx context.Context, token int64, lost context.CancelFunc) {
	lease := l.cl.Lease()
	t := time.NewTicker(lease / 4)
	defer t.Stop()
	ok := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, lease/4)
		held, err := l.st.Renew(c, token)
		cancel()
		switch {
		case err == nil && held:
			ok = time.Now()
			continue
		case err == nil:
			l.storeError("renewing the lease", ErrFenced)
		default:
			l.storeError("renewing the lease", err)
			if time.Since(ok) < lease*2/3 {
				continue
			}
		}
		lost()
		return
	}
}

// goLocal serves the hub's clients without the store while it does not
// answer (on_store_failure local), and returns true once it answers
// again. With on_store_failure error it returns false, as when the hub
// ends, and the hub closes: its clients' streams end with a retry hint.
// Clients still waiting for an answer get an empty stream, so that they
// end the same way: an error status would make EventSource give up for
// good.
func (l *link) goLocal(ctx context.Context) bool {
	if !l.cl.FailLocal() {
		l.hub.answer(http.StatusOK, http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}, true)
		return false
	}
	if m := l.hub.cfg.Metrics; m != nil {
		m.fallbacks.Inc()
	}
	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	l.set(local, 0, stop)
	defer l.set(follower, 0, nil)
	done := make(chan bool, 1)
	go func() { done <- l.hub.readUpstream(readCtx, l.hub.lastDeliveredID()) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case over := <-done:
			return !over && ctx.Err() == nil
		case <-ctx.Done():
			stop()
			<-done
			return false
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, _, _, err := l.st.Last(c)
		cancel()
		if err == nil {
			storeLog.Log(l.hub.cfg.Logger, zapcore.InfoLevel, "shared stream store: reachable again; rejoining the cluster", zap.String("key_hash", keyHash(l.hub.key)))
			stop()
			<-done
			return true
		}
	}
}

// deliver is Follow's callback: the store's events, in its order, to the
// hub's clients — unless the hub serves them on its own meanwhile.
func (l *link) deliver(e Entry) {
	l.deliverMu.Lock()
	defer l.deliverMu.Unlock()
	if r, _ := l.current(); r == local {
		return
	}
	l.hub.deliverEntry(e)
}

// info is the link's part of the admin API's view.
func (l *link) info() (r role, holderName string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.role, l.holderName
}
