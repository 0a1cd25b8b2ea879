package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestBucketsRoundTrip(t *testing.T) {
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 257, 1000, 123456, 1 << 40, math.MaxUint64 - 1, math.MaxUint64}
	for i := range 5000 {
		vals = append(vals, uint64(i)*7919)
	}
	for _, v := range vals {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d [%d,%d]", v, i, lo, hi)
		}
		if v >= histSub && float64(hi-lo+1)/float64(lo) > 1.0/histHalf+1e-12 {
			t.Fatalf("bucket %d [%d,%d] too wide", i, lo, hi)
		}
	}
	// Buckets are contiguous and increasing.
	for i := 1; i < histBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("gap between bucket %d and %d: %d -> %d", i-1, i, prevHi, lo)
		}
	}
	if _, hi := bucketRange(histBuckets - 1); hi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d", hi)
	}
}

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []uint64, q float64) uint64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[rank-1]
}

func TestQuantileMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() uint64{
		"uniform-small": func() uint64 { return uint64(r.IntN(100)) },
		"uniform":       func() uint64 { return uint64(r.IntN(5_000_000)) },
		"lognormal":     func() uint64 { return uint64(math.Exp(r.NormFloat64()*1.5 + 12)) },
	}
	for name, gen := range dists {
		for _, n := range []int{1, 2, 10, 99, 1000, 100000} {
			var h Histogram
			vals := make([]uint64, n)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				want := float64(exactQuantile(vals, q))
				got := h.Quantile(q)
				if math.Abs(got-want) > want/histHalf/2+1 {
					t.Errorf("%s n=%d q=%v: got %v, want %v", name, n, q, got, want)
				}
			}
			if h.Max() != vals[n-1] || h.Count() != uint64(n) {
				t.Errorf("%s n=%d: max %d count %d", name, n, h.Max(), h.Count())
			}
		}
	}
}

func TestQuantileSmallExact(t *testing.T) {
	var h Histogram
	for v := uint64(1); v <= 100; v++ {
		h.Record(v)
	}
	for q, want := range map[float64]float64{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0.001: 1} {
		if got := h.Quantile(q); got != want {
			t.Errorf("q=%v: got %v, want %v", q, got, want)
		}
	}
	if h.Mean() != 50.5 {
		t.Errorf("mean %v", h.Mean())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty histogram not zero")
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(uint64(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 || h.Max() != 7999 {
		t.Fatalf("count %d max %d", h.Count(), h.Max())
	}
}
