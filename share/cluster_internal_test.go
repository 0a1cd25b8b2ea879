package share

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func clusterConfig(fc *fakeCluster) *Config {
	cfg := testConfig()
	cfg.Cluster = fc
	return cfg
}

func entries(ids ...int) []Entry {
	es := make([]Entry, len(ids))
	for i, id := range ids {
		es[i] = Entry{ID: fmt.Sprint(id), Own: true, Data: []byte(ev(id))}
	}
	return es
}

// another makes the fake stream's lease another process's, with a stored
// stream answer.
func another(s *fakeStream) {
	s.holder, s.token = "other", 5
	s.status, s.header = 200, http.Header{"Content-Type": {"text/event-stream"}}
}

// recvUntil takes from s until what it got ends with want, or fails.
func recvUntil(t *testing.T, s *Sub, want string) string {
	t.Helper()
	var got strings.Builder
	deadline := time.After(5 * time.Second)
	for !strings.HasSuffix(got.String(), want) {
		select {
		case <-s.Signal():
		case <-deadline:
			t.Fatalf("got %q, still waiting for %q", got.String(), want)
		}
		b, _, _ := s.Take()
		got.Write(b)
		s.Done(b)
	}
	return got.String()
}

// A client resumes on an instance whose hub delivers a little behind the
// store (its follower is catching up, or pub/sub is a few ms late), with
// an id the hub has not delivered yet: it must get the events after its
// id, once — not again the ones between the hub's position and its id.
func TestClusterCatchUpAheadOfTheHub(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "cluster-catchup-ahead"
	fc := newFakeCluster(2 * time.Second)
	st := fc.stream(key)
	st.set(another)
	st.add(entries(1, 2, 3, 4, 5)...)
	cfg := clusterConfig(fc)
	h, s0 := Join(key, cfg, streamRequest(), nil, newFakeUpstream(), nil, "")
	<-h.Ready()
	// The hub follows from 5; it lags at 5 while the store gets 6, 7, 8.
	st.set(func(s *fakeStream) { s.limit = 5 })
	st.add(entries(6, 7, 8)...)
	go func() {
		time.Sleep(50 * time.Millisecond)
		st.set(func(s *fakeStream) { s.limit = 0 })
	}()
	_, s1 := Join(key, cfg, streamRequest(), nil, nil, nil, "7")
	recvUntil(t, s0, ev(8))
	if got := recvUntil(t, s1, ev(8)); got != ev(8) {
		t.Errorf("resumed from 7 on a hub at 5: got %q, want event 8 alone", got)
	}
	h.Leave(s0)
	h.Leave(s1)
	waitClosed(t, h)
}

// A client resumes with an id the hub delivered before it followed the
// store to where it is now: events after the id come from the store, then
// the live ones, none twice, none lost, even while events are delivered
// meanwhile.
func TestClusterCatchUpBehindTheHub(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "cluster-catchup-behind"
	fc := newFakeCluster(2 * time.Second)
	st := fc.stream(key)
	st.set(another)
	st.add(entries(1, 2, 3)...)
	cfg := clusterConfig(fc)
	h, s0 := Join(key, cfg, streamRequest(), nil, newFakeUpstream(), nil, "")
	<-h.Ready()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 4; i <= 40; i++ {
			st.add(entries(i)...)
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(5 * time.Millisecond)
	_, s1 := Join(key, cfg, streamRequest(), nil, nil, nil, "2")
	wg.Wait()
	recvUntil(t, s0, ev(40))
	want := ev(3)
	for i := 4; i <= 40; i++ {
		want += ev(i)
	}
	if got := recvUntil(t, s1, ev(40)); got != want {
		t.Errorf("resumed from 2: got %q, want 3..40", got)
	}
	h.Leave(s0)
	h.Leave(s1)
	waitClosed(t, h)
}

// An event that does not carry an id comes from the store without the id
// it inherits (redisstore stores none): the hub gives it the last id, as a
// browser holds it, so that its history and its resume position stay
// right.
func TestClusterEventWithoutIDKeepsTheLastID(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const key = "cluster-inherit"
	fc := newFakeCluster(2 * time.Second)
	st := fc.stream(key)
	st.set(another)
	cfg := clusterConfig(fc)
	h, s0 := Join(key, cfg, streamRequest(), nil, newFakeUpstream(), nil, "")
	<-h.Ready()
	st.add(entries(1)...)
	st.add(Entry{Data: []byte("data: b\n\n")})
	recvUntil(t, s0, "data: b\n\n")
	if id := h.lastDeliveredID(); id != "1" {
		t.Errorf("last delivered id %q after an event without id, want 1", id)
	}
	_, s1 := Join(key, cfg, streamRequest(), nil, nil, nil, "1")
	if got := recvUntil(t, s1, "data: b\n\n"); got != "data: b\n\n" {
		t.Errorf("resumed from 1: got %q", got)
	}
	h.Leave(s0)
	h.Leave(s1)
	waitClosed(t, h)
}
