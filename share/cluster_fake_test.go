package share

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// fakeCluster is an in-memory Cluster for the link's state machine: one
// process's view, where the other processes are the test. A real Redis is
// tested in redisstore and cluster.
type fakeCluster struct {
	lease     time.Duration
	failLocal bool

	mu      sync.Mutex
	streams map[string]*fakeStream
}

func newFakeCluster(lease time.Duration) *fakeCluster {
	return &fakeCluster{lease: lease, failLocal: true, streams: map[string]*fakeStream{}}
}

func (c *fakeCluster) Stream(key string, _ int) ClusterStream { return c.stream(key) }

func (c *fakeCluster) stream(key string) *fakeStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.streams[key]
	if s == nil {
		s = &fakeStream{epoch: "e1", fence: 100, changed: make(chan struct{})}
		c.streams[key] = s
	}
	return s
}

func (c *fakeCluster) Owner() string        { return "me" }
func (c *fakeCluster) Lease() time.Duration { return c.lease }
func (c *fakeCluster) FailLocal() bool      { return c.failLocal }

var errFakeDown = errors.New("fake store: down")

// fakeStream is one key's stream. Its followers deliver from their own
// goroutines (as Redis's dispatcher does), up to limit.
type fakeStream struct {
	mu       sync.Mutex
	down     bool
	epoch    string
	entries  []Entry // offsets 1..n of epoch
	lastID   string
	holder   string // "" none
	token    int64
	fence    int64
	status   int
	header   http.Header
	limit    uint64 // followers deliver up to this offset (0: all)
	appends  int
	refused  int
	changed  chan struct{} // closed and replaced on each change
	follows  int           // running Follows
	acquires int
	// heldLastFails fails that many Last calls made while "me" holds the
	// lease.
	heldLastFails int
	// acquireWaits makes Acquire wait for its context's end.
	acquireWaits bool
}

func (s *fakeStream) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *fakeStream) set(f func(s *fakeStream)) {
	s.mu.Lock()
	f(s)
	s.changedLocked()
	s.mu.Unlock()
}

// add appends entries as another process would (no lease check).
func (s *fakeStream) add(es ...Entry) {
	s.set(func(s *fakeStream) {
		for _, e := range es {
			e.Epoch, e.Offset = s.epoch, uint64(len(s.entries)+1)
			s.entries = append(s.entries, e)
			if e.Own {
				s.lastID = e.ID
			}
		}
	})
}

func (s *fakeStream) Acquire(ctx context.Context) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acquires++
	if s.acquireWaits {
		s.mu.Unlock()
		<-ctx.Done()
		s.mu.Lock()
		return 0, false, ctx.Err()
	}
	if s.down {
		return 0, false, errFakeDown
	}
	if s.holder != "" {
		return s.token, false, nil
	}
	s.fence++
	s.holder, s.token = "me", s.fence
	s.changedLocked()
	return s.token, true, nil
}

func (s *fakeStream) Renew(_ context.Context, token int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false, errFakeDown
	}
	return s.holder != "" && s.token == token, nil
}

func (s *fakeStream) Release(_ context.Context, token int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errFakeDown
	}
	if s.token == token {
		s.holder = ""
		s.changedLocked()
	}
	return nil
}

func (s *fakeStream) Holder(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", errFakeDown
	}
	return s.holder, nil
}

func (s *fakeStream) Append(_ context.Context, token int64, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errFakeDown
	}
	if s.holder == "" || s.token != token {
		s.refused++
		return ErrFenced
	}
	if e.Own && e.ID != "" && e.ID == s.lastID {
		return nil
	}
	s.appends++
	e.Epoch, e.Offset = s.epoch, uint64(len(s.entries)+1)
	s.entries = append(s.entries, e)
	if e.Own {
		s.lastID = e.ID
	}
	s.changedLocked()
	return nil
}

func (s *fakeStream) SetAnswer(_ context.Context, token int64, status int, header http.Header) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errFakeDown
	}
	if s.holder == "" || s.token != token {
		return ErrFenced
	}
	s.status, s.header = status, header
	s.changedLocked()
	return nil
}

func (s *fakeStream) Answer(context.Context) (int, http.Header, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return 0, nil, false, errFakeDown
	}
	return s.status, s.header, s.status != 0, nil
}

func (s *fakeStream) Last(context.Context) (string, uint64, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", 0, "", errFakeDown
	}
	if s.holder == "me" && s.heldLastFails > 0 {
		s.heldLastFails--
		return "", 0, "", errFakeDown
	}
	return s.epoch, uint64(len(s.entries)), s.lastID, nil
}

func (s *fakeStream) Since(_ context.Context, id string) ([]Entry, string, uint64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, "", 0, false, errFakeDown
	}
	for i := len(s.entries) - 1; i >= 0; i-- {
		if e := s.entries[i]; e.Own && e.ID == id {
			return append([]Entry(nil), s.entries[i+1:]...), s.epoch, uint64(len(s.entries)), true, nil
		}
	}
	return nil, s.epoch, 0, false, nil
}

func (s *fakeStream) Range(_ context.Context, epoch string, after uint64, count int) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errFakeDown
	}
	if epoch != s.epoch {
		return nil, errors.New("fake store: epoch changed")
	}
	end := min(uint64(len(s.entries)), after+uint64(count))
	if after >= end {
		return nil, nil
	}
	return append([]Entry(nil), s.entries[after:end]...), nil
}

// Follow delivers from a goroutine of its own, up to limit, and the answer
// once stored.
func (s *fakeStream) Follow(ctx context.Context, epoch string, after uint64, deliver func(Entry), answer func(int, http.Header)) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.mu.Lock()
	s.follows++
	s.mu.Unlock()
	go func() {
		defer close(done)
		next, answered := after+1, false
		for {
			s.mu.Lock()
			ch := s.changed
			var todo []Entry
			for next <= uint64(len(s.entries)) && (s.limit == 0 || next <= s.limit) && !s.down {
				todo = append(todo, s.entries[next-1])
				next++
			}
			status, header := s.status, s.header
			s.mu.Unlock()
			if status != 0 && !answered && answer != nil {
				answered = true
				answer(status, header)
			}
			for _, e := range todo {
				if ctx.Err() != nil {
					return
				}
				deliver(e)
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		s.mu.Lock()
		s.follows--
		s.mu.Unlock()
	}
}

var _ ClusterStream = (*fakeStream)(nil)

// waitFake waits until cond holds for s (checked under s.mu), or 5s.
func waitFake(s *fakeStream, cond func(s *fakeStream) bool) bool {
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		ok, ch := cond(s), s.changed
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}
