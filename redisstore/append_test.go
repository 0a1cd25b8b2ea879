package redisstore

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
)

func TestAppendNumbersConsecutivelyAndSkipsTheLastIDReplayed(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 100)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "a")
	var epoch string
	for i := 1; i <= 5; i++ {
		e, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: []byte("data " + strconv.Itoa(i)), Own: i == 3})
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			epoch = e.Epoch
		}
		if e.Offset != uint64(i) || e.Epoch != epoch || len(epoch) != 16 {
			t.Fatalf("append %d: epoch %q offset %d", i, e.Epoch, e.Offset)
		}
	}
	// The upstream, resumed from id 5, sends event 5 again: skipped.
	e, err := s.Append(ctx, tok, Entry{ID: "5", Data: []byte("data 5")})
	if !errors.Is(err, ErrSkipped) || e.Offset != 5 || e.Epoch != epoch {
		t.Fatalf("replayed last id: %+v, %v; want ErrSkipped at offset 5", e, err)
	}
	// Events without an id are never skipped, and keep the last id.
	for i := 6; i <= 7; i++ {
		if e, err := s.Append(ctx, tok, Entry{Data: []byte("anon")}); err != nil || e.Offset != uint64(i) {
			t.Fatalf("append without id: %+v, %v", e, err)
		}
	}
	ep, off, last, err := s.Last(ctx)
	if err != nil || ep != epoch || off != 7 || last != "5" {
		t.Fatalf("Last = %q, %d, %q, %v; want %q, 7, \"5\"", ep, off, last, err, epoch)
	}
	es, err := s.Range(ctx, epoch, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	consecutive(t, es, 1)
	if len(es) != 7 || string(es[2].Data) != "data 3" || !es[2].Own || es[1].Own || es[4].ID != "5" || es[5].ID != "" {
		t.Fatalf("Range: %+v", es)
	}
	if n, err := s.Len(ctx); n != 7 || err != nil {
		t.Fatalf("Len %d, %v; want 7", n, err)
	}
	if es, err := s.Range(ctx, epoch, 5, 1); err != nil || len(es) != 1 || es[0].Offset != 6 {
		t.Fatalf("Range after 5, count 1: %+v, %v", es, err)
	}
	if _, err := s.Range(ctx, "0123456789abcdef", 0, 10); !errors.Is(err, ErrEpoch) {
		t.Fatalf("Range of another epoch: %v; want ErrEpoch", err)
	}
}

func TestAppendTrimsToAboutMaxLen(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	const maxLen = 100
	s := c.Stream("k", maxLen)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "a")
	for i := 1; i <= 1000; i++ {
		if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.rdb.XLen(ctx, s.events).Result()
	if err != nil || n < maxLen || n > 3*maxLen {
		t.Fatalf("XLEN %d, %v; want about %d", n, err, maxLen)
	}
	es, next, ok, err := s.Since(ctx, "990")
	if err != nil || !ok || len(es) != 10 || es[0].Offset != 991 || next.Offset != 1000 {
		t.Fatalf("Since(990) = %v, %+v, %v, %v", offsets(es), next, ok, err)
	}
	consecutive(t, es, 991)
	if _, _, ok, err := s.Since(ctx, "1"); err != nil || ok {
		t.Fatalf("Since of a trimmed id: ok %v, %v; want a miss", ok, err)
	}
}

func TestSinceHitMissAndNewest(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 10000)
	ctx := ctxT(t)
	if _, _, ok, err := s.Since(ctx, "1"); err != nil || ok {
		t.Fatalf("Since on no stream: %v, %v", ok, err)
	}
	tok := mustAcquire(t, s, "a")
	// 600 events (more than one scan chunk); ids repeat every 300: the
	// newest one counts.
	for i := range 600 {
		if _, err := s.Append(ctx, tok, Entry{ID: "id" + strconv.Itoa(i%300), Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	es, next, ok, err := s.Since(ctx, "id0")
	if err != nil || !ok || len(es) != 299 || next.Offset != 600 || next.Epoch == "" {
		t.Fatalf("Since(id0) = %d entries, %+v, %v, %v", len(es), next, ok, err)
	}
	consecutive(t, es, 302)
	es, next, ok, err = s.Since(ctx, "id299")
	if err != nil || !ok || len(es) != 0 || next.Offset != 600 {
		t.Fatalf("Since(newest) = %d entries, %+v, %v, %v", len(es), next, ok, err)
	}
	if _, _, ok, err := s.Since(ctx, "nope"); err != nil || ok {
		t.Fatalf("Since(unknown) = %v, %v", ok, err)
	}
	if _, _, ok, err := s.Since(ctx, ""); err != nil || ok {
		t.Fatalf("Since(\"\") = %v, %v", ok, err)
	}
}

func TestAnswerIsStoredAndFenced(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 100)
	ctx := ctxT(t)
	if _, _, ok, err := s.Answer(ctx); err != nil || ok {
		t.Fatalf("Answer before any: %v, %v", ok, err)
	}
	tok := mustAcquire(t, s, "a")
	h := http.Header{"Content-Type": {"text/event-stream"}, "X-A": {"1", "2"}}
	if err := s.SetAnswer(ctx, tok, 200, h); err != nil {
		t.Fatal(err)
	}
	st, got, ok, err := s.Answer(ctx)
	if err != nil || !ok || st != 200 || got.Get("Content-Type") != "text/event-stream" || len(got["X-A"]) != 2 {
		t.Fatalf("Answer = %d, %v, %v, %v", st, got, ok, err)
	}
	// The answer began the epoch; the first event is offset 1 of it.
	epoch, off, _, _ := s.Last(ctx)
	e, err := s.Append(ctx, tok, Entry{ID: "1"})
	if err != nil || e.Epoch != epoch || e.Offset != 1 || off != 0 {
		t.Fatalf("first append after the answer: %+v, %v (epoch %q offset %d)", e, err, epoch, off)
	}
}

func TestIdleKeysExpire(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 100)
	ctx := ctxT(t)
	tok := mustAcquire(t, s, "a")
	if _, err := s.Append(ctx, tok, Entry{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(ctx, tok); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{s.meta, s.events, s.fence} {
		ttl, err := c.rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 50*time.Minute || ttl > time.Hour {
			t.Errorf("PTTL %s = %v, %v; want about an hour", k, ttl, err)
		}
	}
	if ttl, _ := c.rdb.PTTL(ctx, s.lease).Result(); ttl <= 0 || ttl > time.Second {
		t.Errorf("lease PTTL %v; want at most the lease", ttl)
	}
	if !strings.HasPrefix(s.meta, "sse_proxy:{") || !strings.HasSuffix(s.meta, "}:meta") || len(s.Hash()) != 16 {
		t.Errorf("key %s", s.meta)
	}
}

func TestAppendOverTCPAndUnixPrefixAddresses(t *testing.T) {
	srv := startRedis(t, redistest.WithTCP())
	for _, addr := range []string{srv.TCPAddr(), "unix/" + srv.Addr()} {
		c := testClient(t, addr, time.Second)
		s := c.Stream("k-"+addr, 10)
		tok := mustAcquire(t, s, "a")
		if e, err := s.Append(ctxT(t), tok, Entry{ID: "1"}); err != nil || e.Offset != 1 {
			t.Fatalf("%s: %+v, %v", addr, e, err)
		}
	}
}
