package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateWaiter blocks on gate until it is closed; the test counts its wakes.
//
//go:noinline
func gateWaiter(gate <-chan struct{}, done *sync.WaitGroup) {
	<-gate
	done.Done()
}

// TestSchedTraceCountsWakes records a trace in which gateWaiters goroutines
// block on one channel and are all woken by closing it, and checks that
// the reader sees that many creations and that many wakes of goroutines
// blocked in gateWaiter.
func TestSchedTraceCountsWakes(t *testing.T) {
	const waiters = 50
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("cannot trace (another trace running?): %v", err)
	}
	gate := make(chan struct{})
	var started, done sync.WaitGroup
	done.Add(waiters)
	for range waiters {
		started.Go(func() {})
		go gateWaiter(gate, &done)
	}
	started.Wait()
	time.Sleep(100 * time.Millisecond) // every waiter is parked on the gate
	close(gate)
	done.Wait()
	trace.Stop()

	st, err := readSchedTrace(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Creations < 2*waiters {
		t.Errorf("%d goroutine creations, want at least %d", st.Creations, 2*waiters)
	}
	var gateStarts int64
	for _, ct := range st.Created.Cats {
		for f, v := range ct.byFunc {
			if strings.HasSuffix(f, ".TestSchedTraceCountsWakes.gowrap1") || strings.HasSuffix(f, ".gateWaiter") {
				gateStarts += v
			}
		}
	}
	if got := st.Created.value(catModule); got < 2*waiters {
		t.Errorf("%d goroutines created by this module's code (the test), want at least %d", got, 2*waiters)
	}
	if gateStarts != waiters {
		t.Errorf("%d goroutines started in gateWaiter, want %d\n%s", gateStarts, waiters, schedTable(st, 0, nil, nil))
	}
	var gateWakes int64
	for _, ct := range st.Wakes.Cats {
		for f, v := range ct.byFunc {
			if strings.HasSuffix(f, ".gateWaiter") {
				gateWakes += v
			}
		}
	}
	if gateWakes != waiters {
		t.Errorf("%d wakes of goroutines blocked in gateWaiter, want %d\n%s", gateWakes, waiters,
			schedTable(st, 0, nil, nil))
	}
	if st.Reasons["chan receive"] < waiters {
		t.Errorf("%d wakes from a channel receive, want at least %d", st.Reasons["chan receive"], waiters)
	}
	if int64(st.Unblocks) != st.Wakes.Total || st.Unblocks < waiters {
		t.Errorf("%d unblocks, %d wakes attributed", st.Unblocks, st.Wakes.Total)
	}
	if len(st.Latencies) < waiters {
		t.Errorf("%d scheduling latencies, want at least %d", len(st.Latencies), waiters)
	}
	if p50, p99 := latencyQuantile(st.Latencies, 0.5), latencyQuantile(st.Latencies, 0.99); p50 <= 0 || p99 < p50 {
		t.Errorf("latency p50 %v p99 %v", p50, p99)
	}

	// Two events delivered per second: the table divides the unblock
	// rate by it.
	table := schedTable(st, 2, nil, nil)
	if !strings.Contains(table, "goroutines woken per delivered event") {
		t.Errorf("table:\n%s", table)
	}

	// The Go team's reader counts the same runnable intervals.
	f := filepath.Join(t.TempDir(), "trace.out")
	if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	count, delay, err := goSchedProfile(f)
	if err != nil {
		t.Fatal(err)
	}
	if count != int64(len(st.Latencies)) || delay != st.latencyTotal() {
		t.Errorf("go tool trace: %d intervals, %v; this reader: %d, %v", count, delay, len(st.Latencies), st.latencyTotal())
	}
}
