package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAppend measures one Append's round trip on a unix socket, and
// reports the Redis commands it costs (INFO commandstats before and after:
// the EVALSHA and the commands its script runs).
func BenchmarkAppend(b *testing.B) {
	srv := startRedis(b)
	c := testClient(b, srv.Addr(), 5*time.Second)
	s := c.Stream("bench", 1000)
	ctx := context.Background()
	tok := mustAcquire(b, s, "b")
	data := []byte(strings.Repeat("x", 200))
	if _, err := s.Append(ctx, tok, Entry{ID: "warm", Data: data}); err != nil {
		b.Fatal(err)
	}
	before := commandCount(b, c)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	after := commandCount(b, c)
	b.ReportMetric(float64(after-before-1)/float64(b.N), "redis-cmds/op") // -1: the INFO itself
}

// BenchmarkAppendToFollower measures an entry's way from Append on one
// client to deliver on another client's follower, and the Redis commands
// that costs.
func BenchmarkAppendToFollower(b *testing.B) {
	srv := startRedis(b)
	holder, follower := testClient(b, srv.Addr(), 5*time.Second), testClient(b, srv.Addr(), 5*time.Second)
	s := holder.Stream("bench", 1000)
	ctx := context.Background()
	tok := mustAcquire(b, s, "b")
	got := make(chan struct{}, 1)
	defer follower.Follow(ctx, follower.Stream("bench", 1000), "", 0, func(Entry) { got <- struct{}{} }, nil)()
	if _, err := s.Append(ctx, tok, Entry{ID: "warm"}); err != nil {
		b.Fatal(err)
	}
	<-got
	data := []byte(strings.Repeat("x", 200))
	before := commandCount(b, holder)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Append(ctx, tok, Entry{ID: strconv.Itoa(i), Data: data}); err != nil {
			b.Fatal(err)
		}
		<-got
	}
	b.StopTimer()
	// The follower sends no command per entry: the same count as without it.
	b.ReportMetric(float64(commandCount(b, holder)-before-1)/float64(b.N), "redis-cmds/op")
}

// commandCount sums the calls of every command in INFO commandstats.
func commandCount(tb testing.TB, c *Client) int64 {
	tb.Helper()
	info, err := c.rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, "calls=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		k, _ := strconv.ParseInt(v, 10, 64)
		n += k
	}
	return n
}
