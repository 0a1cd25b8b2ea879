package cluster

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
	"github.com/sse-proxy/caddy-sse-proxy/internal/testcluster"
)

// lease is the store lease the cluster runs with.
const lease = testcluster.Lease

// startCluster is testcluster.Start with a goroutine leak check first, so
// that it checks after every other cleanup.
func startCluster(t *testing.T, n int, interval time.Duration) *testcluster.Cluster {
	t.Helper()
	testcaddy.LeakCheck(t)
	return testcluster.Start(t, n, interval)
}

// readers starts one reader per entry of urls (each follows its function),
// until the test ends.
func readers(t *testing.T, client func(i int) *http.Client, n int, next func(i, attempt int) string) []*reader {
	return readersDropping(t, client, n, 0, next)
}

// readersDropping is readers whose connections drop after perConn events
// (see reader.perConn).
func readersDropping(t *testing.T, client func(i int) *http.Client, n, perConn int, next func(i, attempt int) string) []*reader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	rs := make([]*reader, n)
	for i := range rs {
		rs[i] = newReader(client(i), func(attempt int) string { return next(i, attempt) })
		rs[i].perConn = perConn
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i].run(ctx)
		}()
	}
	return rs
}

// waitAll waits until every reader got an id of at least n.
func waitAll(t *testing.T, rs []*reader, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i, r := range rs {
		if !r.waitFor(n, time.Until(deadline)) {
			t.Fatalf("reader %d: no id %d within %v (last %d, %d connections)", i, n, timeout, r.last(), r.connections())
		}
	}
}

func checkAll(t *testing.T, rs []*reader) {
	t.Helper()
	bad := 0
	for i, r := range rs {
		if err := r.check(); err != nil {
			if bad++; bad <= 5 {
				t.Errorf("reader %d: %v", i, err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d readers saw a gap or a repeat", bad, len(rs))
	}
}

func clients(t *testing.T) func(i int) *http.Client {
	h1, h2 := testcaddy.Client(t, testcaddy.H1), testcaddy.Client(t, testcaddy.H2)
	return func(i int) *http.Client {
		if i%2 == 0 {
			return h1
		}
		return h2
	}
}

// One upstream request serves every client of the cluster: 300 clients,
// spread over three instances, half over HTTP/1.1 and half over HTTP/2.
func TestClusterOpensOneUpstreamRequestFor300Clients(t *testing.T) {
	c := startCluster(t, 3, 50*time.Millisecond)
	rs := readers(t, clients(t), 300, func(i, _ int) string { return c.Instances[i%3].URL + "/feed" })
	waitAll(t, rs[:1], 1, 30*time.Second)
	target := rs[0].last() + 40
	waitAll(t, rs, target, 60*time.Second)
	if got := c.Upstream.MaxOpen.Load(); got != 1 {
		t.Errorf("the upstream had %d requests open at once; want 1", got)
	}
	if got := c.Upstream.Requests.Load(); got != 1 {
		t.Errorf("the upstream was asked %d times; want 1", got)
	}
	checkAll(t, rs)
	for i, r := range rs {
		if n := r.connections(); n != 1 {
			t.Errorf("reader %d connected %d times; want once", i, n)
			break
		}
	}
}

// A client whose connection breaks comes back to another instance with
// Last-Event-ID, and gets exactly the events after it.
func TestClusterClientMovedToAnotherInstanceResumes(t *testing.T) {
	c := startCluster(t, 3, 20*time.Millisecond)
	// Every reader drops its connection every 25 events and comes back to
	// the next instance.
	rs := readersDropping(t, clients(t), 20, 25, func(i, attempt int) string { return c.Instances[(i+attempt)%3].URL + "/feed" })
	waitAll(t, rs[:1], 1, 30*time.Second)
	waitAll(t, rs, rs[0].last()+150, 60*time.Second)
	checkAll(t, rs)
	for i, r := range rs {
		if n := r.connections(); n < 5 {
			t.Errorf("reader %d connected only %d times; the test wants it to move", i, n)
		}
	}
}

// The instance that reads the upstream is killed: another takes over
// within the lease and resumes the upstream from the last stored id. The
// clients of the other instances see no error, no gap and no repeat; the
// killed instance's clients come back elsewhere and resume.
func TestClusterHolderKilledAnotherTakesOver(t *testing.T) {
	c := startCluster(t, 3, 20*time.Millisecond)
	cl := clients(t)
	// The first client is on instance a, which makes a the holder.
	first := readers(t, cl, 1, func(_, attempt int) string { return c.Instances[attempt%3].URL + "/feed" })
	waitAll(t, first, 1, 30*time.Second)
	onA := readers(t, cl, 20, func(i, attempt int) string { return c.Instances[attempt%3].URL + "/feed" })
	others := readers(t, cl, 40, func(i, _ int) string { return c.Instances[1+i%2].URL + "/feed" })
	all := append(append(first, onA...), others...)
	waitAll(t, all, first[0].last()+20, 60*time.Second)

	c.Instances[0].Kill(t)
	killed := time.Now()
	at := first[0].last()
	// Surviving instances' clients go on; the events after the kill come
	// from the upstream request of the instance that took over.
	waitAll(t, others, at+50, lease+30*time.Second)
	t.Logf("events flowing again %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitAll(t, all, at+60, 60*time.Second)
	checkAll(t, all)
	for i, r := range others {
		if n := r.connections(); n != 1 {
			t.Errorf("reader %d of a surviving instance connected %d times; want once (no error)", i, n)
		}
	}
	if got := c.Upstream.Requests.Load(); got != 2 {
		t.Errorf("the upstream was asked %d times; want 2 (the first holder, then the one that took over)", got)
	}
}

// A holder that stops (SIGSTOP) for longer than its lease is fenced: the
// lease goes to another instance, and when the paused one runs again its
// appends are refused and it stops reading the upstream. No id reaches a
// client twice.
func TestClusterPausedHolderIsFenced(t *testing.T) {
	c := startCluster(t, 3, 20*time.Millisecond)
	cl := clients(t)
	first := readers(t, cl, 1, func(_, attempt int) string { return c.Instances[0].URL + "/feed" })
	waitAll(t, first, 1, 30*time.Second)
	rest := readers(t, cl, 30, func(i, _ int) string { return c.Instances[i%3].URL + "/feed" })
	waitAll(t, rest, first[0].last()+20, 60*time.Second)

	c.Instances[0].Pause(t)
	at := rest[1].last()
	others := []*reader{}
	for i, r := range rest {
		if i%3 != 0 {
			others = append(others, r)
		}
	}
	waitAll(t, others, at+30, 3*lease+30*time.Second)
	c.Instances[0].Resume(t)
	// The resumed instance must let go of its upstream request.
	deadline := time.Now().Add(3*lease + 10*time.Second)
	for c.Upstream.Open.Load() > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := c.Upstream.Open.Load(); n != 1 {
		t.Errorf("%d upstream requests open after the paused holder resumed; want 1", n)
	}
	all := append(first, rest...)
	waitAll(t, all, rest[1].last()+30, 60*time.Second)
	checkAll(t, all)
}

// Redis goes away: no client's stream is cut — each instance serves its
// own clients from an upstream request of its own meanwhile — and when
// Redis comes back empty, the instances rejoin: one upstream request
// again, and the events keep coming.
func TestClusterSurvivesRedisRestartedEmpty(t *testing.T) {
	c := startCluster(t, 3, 20*time.Millisecond)
	rs := readers(t, clients(t), 30, func(i, _ int) string { return c.Instances[i%3].URL + "/feed" })
	waitAll(t, rs[:1], 1, 30*time.Second)
	waitAll(t, rs, rs[0].last()+20, 60*time.Second)

	c.Redis.Kill()
	at := 0
	for _, r := range rs {
		at = max(at, r.last())
	}
	waitAll(t, rs, at+50, 30*time.Second)
	if n := c.Upstream.Open.Load(); n < 2 {
		t.Errorf("%d upstream requests open while Redis is down; want one per instance with clients", n)
	}

	c.Redis.Start()
	deadline := time.Now().Add(3*lease + 15*time.Second)
	for c.Upstream.Open.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := c.Upstream.Open.Load(); n != 1 {
		t.Errorf("%d upstream requests open after Redis came back; want 1", n)
	}
	for _, r := range rs {
		at = max(at, r.last())
	}
	waitAll(t, rs, at+50, 30*time.Second)
	for i, r := range rs {
		if n := r.connections(); n != 1 {
			t.Errorf("reader %d connected %d times; want once: no stream is cut", i, n)
		}
	}
}

// The admin API lists each instance's shared streams: one holder, the
// others followers, under one key hash, with their own clients.
func TestClusterAdminAPIListsTheStreams(t *testing.T) {
	c := startCluster(t, 3, 20*time.Millisecond)
	rs := readers(t, clients(t), 6, func(i, _ int) string { return c.Instances[i%3].URL + "/feed" })
	waitAll(t, rs, 5, 30*time.Second)
	roles := map[string]int{}
	hashes := map[string]bool{}
	for _, in := range c.Instances {
		resp, err := http.Get("http://" + in.Admin + "/sse_proxy/streams")
		if err != nil {
			t.Fatal(err)
		}
		var streams []struct {
			KeyHash     string `json:"key_hash"`
			Clients     int    `json:"clients"`
			Role        string `json:"role"`
			LeaseHolder string `json:"lease_holder"`
			LastID      string `json:"last_id"`
			ReplayDepth int    `json:"replay_depth"`
		}
		err = json.NewDecoder(resp.Body).Decode(&streams)
		resp.Body.Close()
		if err != nil || len(streams) != 1 {
			t.Fatalf("%s: %v %+v", in.Name, err, streams)
		}
		s := streams[0]
		roles[s.Role]++
		hashes[s.KeyHash] = true
		if s.Clients != 2 || s.LeaseHolder == "" || s.LastID == "" || s.ReplayDepth == 0 {
			t.Errorf("%s: %+v; want 2 clients, a lease holder, a last id and a replay depth", in.Name, s)
		}
	}
	if roles["holder"] != 1 || roles["follower"] != 2 || len(hashes) != 1 {
		t.Errorf("roles %v, key hashes %v; want one holder, two followers, one key", roles, hashes)
	}
}

// With on_store_failure error, a client of an instance whose Redis does
// not answer gets an empty stream that ends with a retry hint (EventSource
// comes back after it), not an error status (EventSource would give up).
func TestClusterStoreFailureErrorEndsStreamsWithARetryHint(t *testing.T) {
	testcaddy.LeakCheck(t)
	redis := redistest.Start(t)
	up := testcluster.NewNumbered(t, 20*time.Millisecond)
	in := testcluster.StartInstance(t, "caddy-a", testcluster.Site(up.Addr(), redis.Addr(), lease.String()+"\non_store_failure error"))
	redis.Kill()
	s := testcaddy.Open(t, testcaddy.Client(t, testcaddy.H2), in.URL+"/feed", http.Header{"Accept": {"text/event-stream"}})
	if s.Resp.StatusCode != http.StatusOK || !strings.HasPrefix(s.Resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("got %d %q; want 200 text/event-stream", s.Resp.StatusCode, s.Resp.Header.Get("Content-Type"))
	}
	if err := s.WaitEnd(t, 30*time.Second); err != io.EOF {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	if _, _, retry := testcaddy.ParseEvents(s.Bytes()); retry <= 0 {
		t.Errorf("the stream ended without a retry hint: %q", s.Bytes())
	}
	if n := up.Requests.Load(); n != 0 {
		t.Errorf("the upstream was asked %d times; want none", n)
	}
}
