package main

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// Histogram is a log-linear latency histogram safe for concurrent use: values
// below 2^histSubBits are counted exactly, larger ones in buckets whose width
// is at most 1/2^(histSubBits-1) of their lower bound, so a reported
// percentile is within 0.8% of the true sample. Recording is one atomic add.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	// Shifts run from 1 to 64-histSubBits, each adding histHalf buckets.
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits
	top := v >> uint(shift) // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + int(top-histHalf)
}

// bucketRange returns the smallest and largest value counted in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	shift := uint((i-histSub)/histHalf + 1)
	top := uint64((i-histSub)%histHalf + histHalf)
	lo = top << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one value (for example a latency in nanoseconds).
func (h *Histogram) Record(v uint64) {
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded value, exactly.
func (h *Histogram) Max() uint64 { return h.max.Load() }

// Mean returns the arithmetic mean of the recorded values, or 0.
func (h *Histogram) Mean() float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the q-quantile (0 < q <= 1) by the nearest-rank method:
// the value of rank ceil(q*n) in sorted order, estimated as the middle of its
// bucket and never above Max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			mid := lo + (hi-lo)/2
			return float64(min(mid, h.max.Load()))
		}
	}
	return float64(h.max.Load())
}
