package redisstore

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestFollowCatchesUpThenGoesLiveInOrderWithoutDuplicates(t *testing.T) {
	srv := startRedis(t)
	holder, other := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 1000)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	var epoch string
	for i := 1; i <= 10; i++ {
		e, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: []byte("d")})
		if err != nil {
			t.Fatal(err)
		}
		epoch = e.Epoch
	}
	r := newRecorder()
	stop := other.Follow(ctx, other.Stream("k", 1000), epoch, 3, r.deliver, nil)
	defer stop()
	r.waitFor(t, "entries 4 to 10", func(es []Entry) bool { return len(es) >= 7 })
	for i := 11; i <= 30; i++ {
		if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: []byte("d" + strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	r.waitFor(t, "entries 4 to 30", func(es []Entry) bool { return len(es) >= 27 })
	time.Sleep(100 * time.Millisecond)
	es := r.snapshot()
	if len(es) != 27 {
		t.Fatalf("%d entries: %v", len(es), offsets(es))
	}
	consecutive(t, es, 4)
	if es[26].ID != "30" || string(es[26].Data) != "d30" {
		t.Fatalf("last entry %+v", es[26])
	}
	// After stop, nothing more arrives.
	stop()
	if _, err := s.Append(ctx, tok, Entry{ID: "31"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(r.snapshot()); n != 27 {
		t.Fatalf("%d entries after stop; want 27", n)
	}
}

func TestFollowWhileAppendsRaceDeliversEveryOffsetOnce(t *testing.T) {
	srv := startRedis(t)
	holder := testClient(t, srv.Addr(), time.Second)
	follower := testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 10000)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	if _, err := s.Append(ctx, tok, Entry{ID: "0"}); err != nil {
		t.Fatal(err)
	}
	epoch, _, _, _ := s.Last(ctx)
	const n = 600
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: []byte("x")}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Several followers start at different moments of the appends, from
	// the beginning: each must see 1..n+1 once, in order.
	var recs []*recorder
	for range 4 {
		time.Sleep(5 * time.Millisecond)
		r := newRecorder()
		recs = append(recs, r)
		defer follower.Follow(ctx, follower.Stream("k", 10000), epoch, 0, r.deliver, nil)()
	}
	wg.Wait()
	for _, r := range recs {
		es := r.waitFor(t, "all entries", func(es []Entry) bool { return len(es) >= n+1 })
		consecutive(t, es, 1)
	}
	time.Sleep(100 * time.Millisecond)
	for _, r := range recs {
		if es := r.snapshot(); len(es) != n+1 {
			t.Fatalf("%d entries; want %d", len(es), n+1)
		}
	}
}

func TestFollowFillsAGapFromTheStore(t *testing.T) {
	srv := startRedis(t)
	holder, follower := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 1000)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	e1, err := s.Append(ctx, tok, Entry{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	defer follower.Follow(ctx, follower.Stream("k", 1000), e1.Epoch, 0, r.deliver, nil)()
	r.waitFor(t, "entry 1", func(es []Entry) bool { return len(es) == 1 })
	// Entries 2 and 3 reach the store without a notification (as if the
	// follower's subscription had lost them); entry 4's notification then
	// shows the gap.
	for i := 2; i <= 3; i++ {
		id := strconv.Itoa(i)
		if err := holder.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.events, ID: id + "-0", Values: []any{"d", "", "i", "silent" + id, "o", "0"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	holder.rdb.HSet(ctx, s.meta, "offset", "3")
	if _, err := s.Append(ctx, tok, Entry{ID: "4"}); err != nil {
		t.Fatal(err)
	}
	es := r.waitFor(t, "entries 1 to 4", func(es []Entry) bool { return len(es) >= 4 })
	consecutive(t, es, 1)
	if es[1].ID != "silent2" || es[3].ID != "4" {
		t.Fatalf("entries %+v", es)
	}
}

func TestFollowDeliversAnswersAndServesManyStreamsOnOneConnection(t *testing.T) {
	srv := startRedis(t)
	holder, follower := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	ctx := ctxT(t)
	const streams = 20
	recs := make([]*recorder, streams)
	for i := range streams {
		recs[i] = newRecorder()
		defer follower.Follow(ctx, follower.Stream("k"+strconv.Itoa(i), 100), "", 0, recs[i].deliver, recs[i].answer)()
	}
	for i := range streams {
		s := holder.Stream("k"+strconv.Itoa(i), 100)
		tok := mustAcquire(t, s, "h")
		if err := s.SetAnswer(ctx, tok, 200+i, http.Header{"Content-Type": {"text/event-stream"}}); err != nil {
			t.Fatal(err)
		}
		for j := 1; j <= 3; j++ {
			if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(j), Data: []byte("k" + strconv.Itoa(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range recs {
		es := r.waitFor(t, "3 entries", func(es []Entry) bool { return len(es) >= 3 })
		consecutive(t, es, 1)
		if string(es[0].Data) != "k"+strconv.Itoa(i) {
			t.Fatalf("stream %d got %q", i, es[0].Data)
		}
		r.mu.Lock()
		answers := append([]int(nil), r.answers...)
		r.mu.Unlock()
		if len(answers) != 1 || answers[0] != 200+i {
			t.Fatalf("stream %d answers %v; want [%d]", i, answers, 200+i)
		}
	}
	// One pub/sub connection: the server counts one subscriber client
	// with all the channels.
	n, err := holder.rdb.PubSubNumSub(ctx, holder.Stream("k0", 100).notify).Result()
	if err != nil || n[holder.Stream("k0", 100).notify] != 1 {
		t.Fatalf("subscribers of k0: %v, %v", n, err)
	}
	info, _ := holder.rdb.ClientList(ctx).Result()
	if got := countSub(info); got != 1 {
		t.Fatalf("%d clients with subscriptions; want 1:\n%s", got, info)
	}
}

func TestFollowSurvivesARedisRestartIntoANewEpoch(t *testing.T) {
	srv := startRedis(t)
	holder, follower := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 100)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	old, err := s.Append(ctx, tok, Entry{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	defer follower.Follow(ctx, follower.Stream("k", 100), old.Epoch, 0, r.deliver, nil)()
	r.waitFor(t, "entry 1", func(es []Entry) bool { return len(es) == 1 })

	srv.Kill()
	srv.Start()
	// The lease is gone with the data: take it again and append.
	var e Entry
	var tok2 int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		var won bool
		if tok2, won, err = s.Acquire(ctx, "h"); err == nil && won {
			if e, err = s.Append(ctx, tok2, Entry{ID: "2"}); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no lease after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e.Epoch == old.Epoch || e.Offset != 1 {
		t.Fatalf("first append after the restart: %+v; want offset 1 of a new epoch", e)
	}
	es := r.waitFor(t, "the new epoch's entry", func(es []Entry) bool { return len(es) >= 2 })
	if es[1].Epoch != e.Epoch || es[1].Offset != 1 || es[1].ID != "2" {
		t.Fatalf("after the restart: %+v", es[1])
	}
	// Live again on the new connection.
	if _, err := s.Append(ctx, tok2, Entry{ID: "3"}); err != nil {
		t.Fatal(err)
	}
	es = r.waitFor(t, "entry 2 of the new epoch", func(es []Entry) bool { return len(es) >= 3 })
	if len(es) != 3 || es[2].Offset != 2 || es[2].Epoch != e.Epoch {
		t.Fatalf("entries %+v", es)
	}
}

func TestFollowEndsWithItsContext(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	ctx, cancel := context.WithCancel(ctxT(t))
	r := newRecorder()
	c.Follow(ctx, c.Stream("k", 100), "", 0, r.deliver, nil)
	s := c.Stream("k", 100)
	time.Sleep(50 * time.Millisecond)
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.follow.mu.Lock()
		n := len(c.follow.channels)
		c.follow.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the follower is still registered after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	tok := mustAcquire(t, s, "h")
	if _, err := s.Append(ctxT(t), tok, Entry{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(r.snapshot()); n != 0 {
		t.Fatalf("%d entries after the context ended", n)
	}
}

// countSub counts the clients in a CLIENT LIST reply that subscribe to a
// channel.
func countSub(list string) int {
	n := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "sub=") && f != "sub=0" {
				n++
			}
		}
	}
	return n
}

func TestFollowDeliversWhatArrivesDuringItsCatchUp(t *testing.T) {
	srv := startRedis(t)
	holder, fc := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 100)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	e1, err := s.Append(ctx, tok, Entry{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	// Between the catch-up's read and its delivery, entry 2 is appended
	// and its notification queued; nothing is appended after it.
	var once sync.Once
	testHookAfterRead = func(f *follower) {
		once.Do(func() {
			if _, err := s.Append(ctx, tok, Entry{ID: "2"}); err != nil {
				t.Error(err)
			}
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				f.mu.Lock()
				n := len(f.pending)
				f.mu.Unlock()
				if n > 0 {
					return
				}
			}
			t.Error("the notification of entry 2 was not queued")
		})
	}
	defer func() { testHookAfterRead = nil }()
	r := newRecorder()
	stop := fc.Follow(ctx, fc.Stream("k", 100), e1.Epoch, 0, r.deliver, nil)
	defer stop()
	es := r.waitFor(t, "entries 1 and 2", func(es []Entry) bool { return len(es) >= 2 })
	consecutive(t, es, 1)
	stop() // before the hook is reset
}

func TestFollowersOfOneStreamShareTheChannelAndLeaveAlone(t *testing.T) {
	srv := startRedis(t)
	holder, fc := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	s := holder.Stream("k", 100)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "h")
	r1, r2 := newRecorder(), newRecorder()
	stop1 := fc.Follow(ctx, fc.Stream("k", 100), "", 0, r1.deliver, nil)
	defer stop1()
	stop2 := fc.Follow(ctx, fc.Stream("k", 100), "", 0, r2.deliver, nil)
	defer stop2()
	if _, err := s.Append(ctx, tok, Entry{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	r1.waitFor(t, "entry 1 (first follower)", func(es []Entry) bool { return len(es) == 1 })
	r2.waitFor(t, "entry 1 (second follower)", func(es []Entry) bool { return len(es) == 1 })
	stop1()
	if _, err := s.Append(ctx, tok, Entry{ID: "2"}); err != nil {
		t.Fatal(err)
	}
	es := r2.waitFor(t, "entry 2", func(es []Entry) bool { return len(es) == 2 })
	consecutive(t, es, 1)
	if n := len(r1.snapshot()); n != 1 {
		t.Fatalf("stopped follower got %d entries", n)
	}
	stop2()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := holder.rdb.PubSubNumSub(ctx, s.notify).Result()
		if err == nil && n[s.notify] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed after the last follower left: %v, %v", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
