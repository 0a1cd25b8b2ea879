package redisstore

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLeaseExactlyOneOfTwoClientsWins(t *testing.T) {
	srv := startRedis(t)
	a, b := testClient(t, srv.Addr(), time.Second), testClient(t, srv.Addr(), time.Second)
	var mu sync.Mutex
	winners := map[string]int64{}
	var wg sync.WaitGroup
	for i := range 20 {
		c, owner := a, "a"
		if i%2 == 1 {
			c, owner = b, "b"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, won, err := c.Stream("k", 100).Acquire(ctxT(t), owner)
			if err != nil {
				t.Error(err)
				return
			}
			if won {
				mu.Lock()
				winners[owner] = tok
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners %v; want exactly one", winners)
	}
	owner, tok, err := a.Stream("k", 100).Holder(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if winners[owner] != tok || tok == 0 {
		t.Fatalf("Holder = %s, %d; winners %v", owner, tok, winners)
	}
}

func TestLeaseRenewKeepsItExpiryHandsItOverAndFencesTheOldHolder(t *testing.T) {
	srv := startRedis(t)
	const lease = time.Second // renewed every quarter: a busy CI machine has margin
	a, b := testClient(t, srv.Addr(), lease), testClient(t, srv.Addr(), lease)
	sa, sb := a.Stream("k", 100), b.Stream("k", 100)
	ctx := ctxT(t)
	tokA := mustAcquire(t, sa, "a")
	if _, err := sa.Append(ctx, tokA, Entry{ID: "1", Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	// Renewed every quarter lease for two leases: b never wins.
	for range 8 {
		time.Sleep(lease / 4)
		if held, err := sa.Renew(ctx, tokA); err != nil || !held {
			t.Fatalf("Renew = %v, %v", held, err)
		}
		if tok, won, err := sb.Acquire(ctx, "b"); err != nil || won || tok != tokA {
			t.Fatalf("b's Acquire while a renews = %d, %v, %v; want a's token %d, not won", tok, won, err, tokA)
		}
	}
	// a stops renewing: b wins after the lease, with a higher token.
	time.Sleep(lease + 100*time.Millisecond)
	tokB := mustAcquire(t, sb, "b")
	if tokB <= tokA {
		t.Fatalf("token after takeover %d; want more than %d", tokB, tokA)
	}
	// The old holder is fenced: nothing is added, its Renew says lost.
	if _, err := sa.Append(ctx, tokA, Entry{ID: "2", Data: []byte("zombie")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's Append: %v; want ErrFenced", err)
	}
	if err := sa.SetAnswer(ctx, tokA, 200, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("old holder's SetAnswer: %v; want ErrFenced", err)
	}
	if held, err := sa.Renew(ctx, tokA); err != nil || held {
		t.Fatalf("old holder's Renew = %v, %v; want not held", held, err)
	}
	if _, off, last, err := sb.Last(ctx); err != nil || off != 1 || last != "1" {
		t.Fatalf("Last = %d, %q, %v; want 1, \"1\"", off, last, err)
	}
	// Release by the old token does nothing; by the holder's frees it.
	if err := sa.Release(ctx, tokA); err != nil {
		t.Fatal(err)
	}
	if owner, _, _ := sa.Holder(ctx); owner != "b" {
		t.Fatalf("holder after a stale Release: %q; want b", owner)
	}
	if err := sb.Release(ctx, tokB); err != nil {
		t.Fatal(err)
	}
	if owner, _, _ := sa.Holder(ctx); owner != "" {
		t.Fatalf("holder after Release: %q; want none", owner)
	}
	tokA2 := mustAcquire(t, sa, "a")
	if tokA2 <= tokB {
		t.Fatalf("token %d after %d", tokA2, tokB)
	}
}

func TestLeaseAppendWithoutLeaseIsFenced(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 100)
	if _, err := s.Append(ctxT(t), 1, Entry{Data: []byte("x")}); !errors.Is(err, ErrFenced) {
		t.Fatalf("Append without a lease: %v; want ErrFenced", err)
	}
	if epoch, _, _, _ := s.Last(ctxT(t)); epoch != "" {
		t.Fatalf("a fenced Append made epoch %q", epoch)
	}
}

func TestLeaseTokensStayAboveOnesFromBeforeARestart(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	s := c.Stream("k", 100)
	tok1 := mustAcquire(t, s, "a")
	srv.Kill()
	srv.Start()
	var tok2 int64
	deadline := time.Now().Add(5 * time.Second)
	for {
		t2, won, err := s.Acquire(ctxT(t), "b")
		if err == nil && won {
			tok2 = t2
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lease after the restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tok2 <= tok1 {
		t.Fatalf("token after Redis restarted empty %d; want more than the one from before, %d", tok2, tok1)
	}
}
