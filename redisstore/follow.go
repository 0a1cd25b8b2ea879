package redisstore

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// followers is a Client's delivery side: one pub/sub connection for every
// stream this process follows, one dispatcher goroutine reading it, and a
// short-lived catch-up goroutine per follower only while it reads from the
// store (at the start, on a gap, a new epoch, or a reconnection).
type followers struct {
	c *Client

	// subMu serializes SUBSCRIBE and UNSUBSCRIBE, so that they go out in
	// the order the channel set changed. Held across network I/O; first in
	// the lock order (subMu, mu, follower.mu).
	subMu sync.Mutex

	// mu guards the fields below. Never held across network I/O, nor while
	// a callback runs; second in the lock order.
	mu       sync.Mutex
	ps       *redis.PubSub // made at the first Follow
	channels map[string]*channel
	closed   bool
}

// channel is one subscribed notify channel.
type channel struct {
	confirmed bool        // a subscribe confirmation arrived since it was added
	fs        []*follower // copy-on-write, so the dispatcher reads it without a lock
}

// follower is one Follow call.
type follower struct {
	fs      *followers
	s       *Stream
	deliver func(Entry)
	answer  func(int, http.Header)
	ctx     context.Context // ends at stop, at the caller's ctx end, at Client close
	cancel  context.CancelFunc
	once    sync.Once

	// mu guards the fields below; held while deliver and answer run (never
	// across network I/O); last in the lock order.
	mu       sync.Mutex
	done     bool
	epoch    string
	next     uint64 // the offset to deliver next
	ans      int64  // the answer sequence delivered last, in epoch
	state    int    // waiting, catchingUp or live
	again    bool   // the catch-up must read the store once more before going live
	pending  []notice
	maxQueue int
}

// follower states.
const (
	waiting    = iota // for the subscription's confirmation; live notices are queued
	catchingUp        // a catch-up goroutine runs; live notices are queued
	live              // notices are delivered as they come
)

// catchUpBatch is how many entries a catch-up reads per command.
const catchUpBatch = 512

// testHookAfterRead, set only by tests before any Follow, runs in a
// catch-up goroutine between its read and its delivery.
var testHookAfterRead func(*follower)

func (fs *followers) init(c *Client) {
	fs.c = c
	fs.channels = make(map[string]*channel)
}

// Follow delivers the stream's entries after offset after of epoch to
// deliver, each exactly once and in offset order, then the live ones as
// they are appended, until ctx ends or stop is called; and the upstream's
// answer (SetAnswer) to answer (may be nil) when one is stored that it has
// not delivered yet. Follow returns at once; it subscribes to the stream's
// channel first, then reads what it missed from the store.
//
// When the stream's epoch changes (Redis lost it), the entries of the new
// epoch follow from its first one: the caller sees Entry.Epoch change.
// After a reconnection to Redis the store is read again from the follower's
// position. Entries trimmed before the follower read them are skipped (an
// Offset jumps). epoch "" and after 0 follow from the start of whatever
// the store holds; use Last to follow from now.
//
// deliver and answer run on the Client's dispatcher goroutine or a
// catch-up goroutine, one call at a time per Follow, with a lock held:
// they must not block nor call stop. Entry.Data may be shared between
// followers: do not modify it. When stop returns, no callback runs or will
// run; calling stop again does nothing.
func (c *Client) Follow(ctx context.Context, s *Stream, epoch string, after uint64, deliver func(Entry), answer func(status int, h http.Header)) (stop func()) {
	f := &follower{fs: &c.follow, s: s, deliver: deliver, answer: answer, epoch: epoch, next: after + 1, maxQueue: 4096}
	f.ctx, f.cancel = context.WithCancel(ctx)
	stopClient := context.AfterFunc(c.ctx, f.cancel)
	stopCtx := context.AfterFunc(f.ctx, f.stop)
	c.follow.add(f)
	return func() {
		stopCtx()
		stopClient()
		f.stop()
	}
}

// add registers f, subscribing to its channel if it is the first one, or
// starting its catch-up if the channel is confirmed already.
func (fs *followers) add(f *follower) {
	fs.subMu.Lock()
	defer fs.subMu.Unlock()
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		f.cancel()
		return
	}
	if fs.ps == nil {
		fs.ps = fs.c.rdb.Subscribe(context.Background())
		ch := fs.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
		fs.c.wg.Add(1)
		go fs.run(ch)
	}
	name := f.s.notify
	ch := fs.channels[name]
	first := ch == nil
	if first {
		ch = &channel{}
		fs.channels[name] = ch
	}
	ch.fs = append(slices.Clip(ch.fs), f)
	if ch.confirmed {
		f.catchUp() // under fs.mu, so that Close cannot Wait before its wg.Add
	}
	ps := fs.ps
	fs.mu.Unlock()
	if first {
		// An error leaves the channel in the PubSub's set: its reconnection
		// subscribes again, and the confirmation starts the catch-up.
		ctx, cancel := context.WithTimeout(f.ctx, fs.c.lease)
		if err := ps.Subscribe(ctx, name); err != nil {
			_ = fs.c.fail("subscribe", err)
		}
		cancel()
	}
}

// remove unregisters f, unsubscribing from its channel if it was the last.
func (fs *followers) remove(f *follower) {
	fs.subMu.Lock()
	defer fs.subMu.Unlock()
	fs.mu.Lock()
	name := f.s.notify
	ch := fs.channels[name]
	if ch == nil || fs.closed {
		fs.mu.Unlock()
		return
	}
	i := slices.Index(ch.fs, f)
	if i < 0 {
		fs.mu.Unlock()
		return
	}
	ch.fs = slices.Delete(slices.Clone(ch.fs), i, i+1)
	last := len(ch.fs) == 0
	if last {
		delete(fs.channels, name)
	}
	ps := fs.ps
	fs.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), fs.c.lease)
		if err := ps.Unsubscribe(ctx, name); err != nil {
			_ = fs.c.fail("unsubscribe", err)
		}
		cancel()
	}
}

// close ends the pub/sub connection, and so the dispatcher; the catch-up
// goroutines end with the Client's context.
func (fs *followers) close() {
	fs.subMu.Lock()
	defer fs.subMu.Unlock()
	fs.mu.Lock()
	fs.closed = true
	ps := fs.ps
	fs.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// run is the dispatcher: it hands every notice to the followers of its
// channel, and starts a catch-up for all of them on each subscribe
// confirmation (the first one, and those after a reconnection, when
// notices may have been lost). It ends when the PubSub is closed.
func (fs *followers) run(msgs <-chan any) {
	defer fs.c.wg.Done()
	for m := range msgs {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				fs.confirmed(m.Channel)
			}
		case *redis.Message:
			n, err := parseNotice(m.Payload)
			if err != nil {
				_ = fs.c.fail("notification", err)
				continue
			}
			fs.mu.Lock()
			var list []*follower
			if ch := fs.channels[m.Channel]; ch != nil {
				list = ch.fs
			}
			fs.mu.Unlock()
			for _, f := range list {
				f.offer(n)
			}
		}
	}
}

// confirmed starts a catch-up for every follower of the channel.
func (fs *followers) confirmed(name string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ch := fs.channels[name]
	if ch == nil || fs.closed {
		return
	}
	ch.confirmed = true
	for _, f := range ch.fs {
		f.catchUp()
	}
}

// catchUp starts f's catch-up goroutine, or makes the running one read
// again. Called with fs.mu held (and fs open), or from the dispatcher.
func (f *follower) catchUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.catchUpLocked()
}

// catchUpLocked is catchUp with f.mu held.
func (f *follower) catchUpLocked() {
	if f.done {
		return
	}
	if f.state == catchingUp {
		f.again = true
		return
	}
	f.state = catchingUp
	f.fs.c.wg.Add(1)
	go f.catchUpLoop()
}

// stop ends f: no callback runs after it returns.
func (f *follower) stop() {
	f.mu.Lock()
	f.done = true
	f.pending = nil
	f.mu.Unlock()
	f.cancel()
	f.once.Do(func() { f.fs.remove(f) })
}

// offer handles a live notice: delivers it if it is the next one, drops a
// duplicate, queues it during a catch-up, and starts one on a gap or a new
// epoch.
func (f *follower) offer(n notice) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return
	}
	if f.state != live {
		if len(f.pending) < f.maxQueue {
			f.pending = append(f.pending, n)
		} else {
			f.pending, f.again = nil, true // the catch-up reads them from the store
		}
		return
	}
	if n.entry.Epoch == f.epoch && f.take(n) {
		return
	}
	f.pending = append(f.pending, n)
	f.catchUpLocked()
}

// take delivers n if it is the next notice of f's epoch, or drops it if f
// has it already; false means a gap. f.mu is held.
func (f *follower) take(n notice) bool {
	if n.answer {
		if n.seq > f.ans {
			f.ans = n.seq
			f.giveAnswer(n.status, n.header)
		}
		return true
	}
	switch {
	case n.entry.Offset < f.next:
		return true
	case n.entry.Offset == f.next:
		f.deliver(n.entry)
		f.next++
		return true
	}
	return false
}

// giveAnswer decodes a stored answer and hands it to f.answer. f.mu is
// held.
func (f *follower) giveAnswer(status, header string) {
	if f.answer == nil || status == "" {
		return
	}
	st, h, err := parseAnswer(status, header)
	if err != nil {
		_ = f.fs.c.fail("answer", err)
		return
	}
	f.answer(st, h)
}

// catchUpLoop reads the store from f's position until it has delivered
// everything stored and queued, then lets f go live. It retries (50ms to
// 1s apart) while Redis fails, and ends with f.
func (f *follower) catchUpLoop() {
	defer f.fs.c.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		f.mu.Lock()
		if f.done {
			f.mu.Unlock()
			return
		}
		f.again = false
		epoch, after := f.epoch, f.next-1
		f.mu.Unlock()

		snap, err := f.s.read(f.ctx, after, catchUpBatch)
		if testHookAfterRead != nil {
			testHookAfterRead(f)
		}
		if err != nil {
			f.fs.c.errLog.Log(f.fs.c.logger, zap.WarnLevel, "redis store: catching up failed; retrying", zap.String("stream", f.s.hash), zap.Error(err))
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond

		f.mu.Lock()
		if f.done {
			f.mu.Unlock()
			return
		}
		if snap.epoch != epoch {
			// A new epoch, or none: start at its beginning.
			f.epoch, f.next, f.ans = snap.epoch, 1, 0
			if snap.epoch != "" {
				f.mu.Unlock()
				continue
			}
		}
		if snap.ansSeq > f.ans && snap.status != "" {
			f.ans = snap.ansSeq
			f.giveAnswer(snap.status, snap.header)
		}
		for _, e := range snap.entries {
			if e.Offset >= f.next { // entries trimmed before a read make Offset jump
				f.deliver(e)
				f.next = e.Offset + 1
			}
		}
		if len(snap.entries) == catchUpBatch {
			f.mu.Unlock()
			continue
		}
		f.drainPending()
		if f.again {
			f.mu.Unlock()
			continue
		}
		f.state = live
		f.mu.Unlock()
		return
	}
}

// drainPending delivers the queued notices that follow on what was read,
// in offset order, and asks for another read on a gap or a new epoch.
// f.mu is held.
func (f *follower) drainPending() {
	q := f.pending
	f.pending = nil
	slices.SortStableFunc(q, func(a, b notice) int {
		switch {
		case a.answer != b.answer: // answers first
			if a.answer {
				return -1
			}
			return 1
		case a.entry.Offset < b.entry.Offset:
			return -1
		case a.entry.Offset > b.entry.Offset:
			return 1
		}
		return 0
	})
	for _, n := range q {
		if n.entry.Epoch != f.epoch || !f.take(n) {
			f.again = true
			return
		}
	}
}
