package redisstore

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRenewFailsWhileRedisIsPausedAndWorksAfter(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), 3*time.Second) // commands time out after 1s
	s := c.Stream("k", 100)
	tok := mustAcquire(t, s, "a")
	srv.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start := time.Now()
	held, err := s.Renew(ctx, tok)
	cancel()
	if err == nil || held {
		srv.Resume()
		t.Fatalf("Renew while Redis is paused = %v, %v; want an error", held, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Renew took %v to fail; want the context's 200ms", d)
	}
	// The command timeout bounds a call without a deadline too.
	start = time.Now()
	if _, err := s.Renew(context.Background(), tok); err == nil {
		t.Error("Renew without a deadline while paused succeeded")
	} else if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Renew without a deadline took %v to fail; want the 1s command timeout", d)
	}
	srv.Resume()
	deadline := time.Now().Add(5 * time.Second)
	for {
		held, err := s.Renew(ctxT(t), tok)
		if err == nil {
			if !held {
				t.Fatal("lease lost after a short pause")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Renew after Resume: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPasswordNeverInErrorsOrLogs(t *testing.T) {
	const right, wrong, user = "correct-horse-battery", "wrong-staple-SECRET", "bob-the-user"
	srv := startRedis(t, redistest.WithArgs("--requirepass", right))
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := Config{Address: srv.Addr(), Password: wrong, Username: user, Lease: caddy.Duration(time.Second)}
	c, err := Open(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Stream("k", 10)
	var errs []error
	_, _, err = s.Acquire(ctxT(t), "a")
	errs = append(errs, err)
	_, err = s.Append(ctxT(t), 1, Entry{Data: []byte("x")})
	errs = append(errs, err)
	_, _, _, err = s.Since(ctxT(t), "1")
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("a command with the wrong password succeeded")
		}
		t.Log(err)
		if msg := err.Error(); strings.Contains(msg, wrong) || strings.Contains(msg, right) || strings.Contains(msg, user) {
			t.Fatalf("error text has a secret: %s", msg)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no log line for the failures")
	}
	c.logger.Info("config", zap.Object("config", c.Config()))
	for _, e := range logs.All() {
		line := e.Message
		for _, f := range e.Context {
			if f.Interface != nil {
				if o, ok := f.Interface.(zapcore.ObjectMarshaler); ok {
					enc := zapcore.NewMapObjectEncoder()
					_ = o.MarshalLogObject(enc)
					for k, v := range enc.Fields {
						line += " " + k + "=" + toString(v)
					}
					continue
				}
				if err, ok := f.Interface.(error); ok {
					line += " " + err.Error()
				}
			}
			line += " " + f.String
		}
		if strings.Contains(line, wrong) || strings.Contains(line, user) {
			t.Fatalf("log line has a secret: %s", line)
		}
	}
	for _, text := range []string{c.Config().String(), cfg.String()} {
		if strings.Contains(text, wrong) || strings.Contains(text, user) || !strings.Contains(text, "[REDACTED]") {
			t.Fatalf("Config.String: %s", text)
		}
	}
	// The usage pool's key holds only a hash.
	if k := c.cfg.poolKey(); strings.Contains(k, wrong) {
		t.Fatalf("pool key %s", k)
	}
	// The right password works, and is another client.
	cfg.Password, cfg.Username = right, ""
	c2, err := Open(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2 == c {
		t.Fatal("a different password gave the same client")
	}
	if _, won, err := c2.Stream("k", 10).Acquire(ctxT(t), "a"); err != nil || !won {
		t.Fatalf("with the right password: %v, %v", won, err)
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func TestOpenSharesOneClientPerConfig(t *testing.T) {
	srv := startRedis(t)
	t.Setenv("SSE_PROXY_TEST_REDIS", srv.Addr())
	a, err := Open(Config{Address: "{env.SSE_PROXY_TEST_REDIS}"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(Config{Address: srv.Addr(), KeyPrefix: DefaultKeyPrefix, Lease: caddy.Duration(DefaultLease)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(Config{Address: srv.Addr(), DB: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == other {
		t.Fatalf("clients: a %p b %p other %p; want a == b != other", a, b, other)
	}
	if a.Config().Address != srv.Addr() {
		t.Fatalf("placeholder not expanded: %q", a.Config().Address)
	}
	// Following on a shared client, then closing every user, stops the
	// dispatcher (goleak checks).
	stop := a.Follow(ctxT(t), a.Stream("k", 10), "", 0, func(Entry) {}, nil)
	_ = a.Close()
	stop()
	_ = b.Close()
	_ = other.Close()
	if _, won, err := a.Stream("k", 10).Acquire(ctxT(t), "x"); err == nil || won {
		t.Fatalf("Acquire on a closed client: %v, %v", won, err)
	}
}

func TestFollowStartedWhileRedisIsDownCatchesUpWhenItIsBack(t *testing.T) {
	srv := startRedis(t)
	holder, follower := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	srv.Stop()
	r := newRecorder()
	defer follower.Follow(ctxT(t), follower.Stream("k", 100), "", 0, r.deliver, nil)()
	time.Sleep(200 * time.Millisecond)
	srv.Start()
	s := holder.Stream("k", 100)
	var tok int64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		t2, won, err := s.Acquire(ctxT(t), "h")
		if err == nil && won {
			tok = t2
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lease after Redis came back: %v", err)
		}
	}
	for i := 1; i <= 3; i++ {
		if _, err := s.Append(ctxT(t), tok, Entry{ID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	es := r.waitFor(t, "3 entries", func(es []Entry) bool { return len(es) >= 3 })
	consecutive(t, es, 1)
}

func TestMetricsCount(t *testing.T) {
	srv := startRedis(t)
	const lease = 200 * time.Millisecond
	a, b := testClient(t, srv.Addr(), lease), testClient(t, srv.Addr(), lease)
	sa, sb := a.Stream("k", 100), b.Stream("k", 100)
	ctx := ctxT(t)
	m := ProcessMetrics()
	won, lost, failovers, appends := testutil.ToFloat64(m.leasesWon), testutil.ToFloat64(m.leasesLost), testutil.ToFloat64(m.failovers), testutil.ToFloat64(m.appends)
	hits, misses, errs := testutil.ToFloat64(m.replayHits), testutil.ToFloat64(m.replayMisses), testutil.ToFloat64(m.errors)

	tokA := mustAcquire(t, sa, "a")
	if _, err := sa.Append(ctx, tokA, Entry{ID: "1"}); err != nil {
		t.Fatal(err)
	}
	_, _ = sa.Append(ctx, tokA, Entry{ID: "1"}) // skipped: not counted
	_, _, _, _ = sa.Since(ctx, "1")
	_, _, _, _ = sa.Since(ctx, "nope")
	time.Sleep(lease + 50*time.Millisecond)
	mustAcquire(t, sb, "b") // a failover: a's entry is there
	_, _ = sa.Renew(ctx, tokA)
	_, _ = sa.Append(ctx, tokA, Entry{ID: "2"}) // fenced: the loss is counted once
	srv.Stop()
	_, _, _ = sa.Holder(ctx)

	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"leases won", testutil.ToFloat64(m.leasesWon) - won, 2},
		{"leases lost", testutil.ToFloat64(m.leasesLost) - lost, 1},
		{"failovers", testutil.ToFloat64(m.failovers) - failovers, 1},
		{"appends", testutil.ToFloat64(m.appends) - appends, 1},
		{"replay hits", testutil.ToFloat64(m.replayHits) - hits, 1},
		{"replay misses", testutil.ToFloat64(m.replayMisses) - misses, 1},
		{"errors", testutil.ToFloat64(m.errors) - errs, 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: +%v; want +%v", c.name, c.got, c.want)
		}
	}
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(reg); err != nil {
		t.Fatalf("second Register: %v", err)
	}
	n, err := testutil.GatherAndCount(reg, "caddy_sse_proxy_store_appends_total")
	if err != nil || n != 1 {
		t.Fatalf("gathered %d, %v", n, err)
	}
}
