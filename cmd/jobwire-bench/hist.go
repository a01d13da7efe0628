package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// hist is a latency histogram with log-linear buckets: exact below 128 ns,
// then 64 buckets per power of two (at most 1.6 % relative error). It is
// safe for concurrent use and its size is fixed, however many samples.
type hist struct {
	counts [64 * 64]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64
	max    atomic.Int64
}

func bucketOf(v uint64) int {
	if v < 128 {
		return int(v)
	}
	shift := bits.Len64(v) - 7
	return 64 + shift*64 + int(v>>shift) - 64
}

// bucketMid is the middle of bucket i's range.
func bucketMid(i int) float64 {
	if i < 128 {
		return float64(i)
	}
	shift := (i - 64) / 64
	sub := uint64((i-64)%64 + 64)
	lo := sub << shift
	hi := (sub+1)<<shift - 1
	return (float64(lo) + float64(hi)) / 2
}

func (h *hist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	i := bucketOf(v)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i].Add(1)
	h.n.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// quantile returns the latency below which a fraction q of the samples lie.
func (h *hist) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return min(time.Duration(bucketMid(i)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// latency is a histogram's summary, in milliseconds.
type latency struct {
	Samples uint64  `json:"samples"`
	MeanMS  float64 `json:"mean_ms"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
	P999MS  float64 `json:"p99_9_ms"`
	MaxMS   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (h *hist) summary() latency {
	n := h.n.Load()
	l := latency{Samples: n}
	if n == 0 {
		return l
	}
	l.MeanMS = float64(h.sum.Load()) / float64(n) / 1e6
	l.P50MS = ms(h.quantile(0.50))
	l.P90MS = ms(h.quantile(0.90))
	l.P99MS = ms(h.quantile(0.99))
	l.P999MS = ms(h.quantile(0.999))
	l.MaxMS = ms(time.Duration(h.max.Load()))
	return l
}
