package loadtest

import (
	"math/bits"
	"time"
)

// Histogram records latencies in log-linear buckets, as HDR histograms do:
// below 64 µs one bucket per microsecond, above it every power of two split
// into 32 equal buckets, so a quantile (a bucket's middle) is off by at
// most 1/64 (1.6%) of its value, up to 9 hours, in a fixed 15 KiB whatever
// the number of samples. It is not safe for concurrent use.
type Histogram struct {
	counts [maxExp + 1][subBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
	// maxExp covers up to 2^(maxExp+subBits) µs ≈ 9.5 hours; longer
	// samples land in the last bucket.
	maxExp = 29
)

// Record adds one sample; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	e, s := bucketOf(uint64(d / time.Microsecond))
	h.counts[e][s]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

// bucketOf places v (µs): values below subBuckets go to exponent 0, one
// per bucket; exponent e ≥ 1 holds [32·2^e, 64·2^e) in buckets s = v>>e
// (32 to 63) of width 2^e.
func bucketOf(v uint64) (e, s int) {
	if v < subBuckets {
		return 0, int(v)
	}
	e = bits.Len64(v) - subBits
	if e > maxExp {
		return maxExp, subBuckets - 1
	}
	return e, int(v >> e)
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the q-quantile (0 < q ≤ 1): the middle of the bucket
// holding the ceil(q·n)-th smallest sample, capped at the maximum. Zero
// when there are no samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for e := 0; e <= maxExp; e++ {
		for s := 0; s < subBuckets; s++ {
			c := h.counts[e][s]
			if c == 0 {
				continue
			}
			seen += c
			if seen < rank {
				continue
			}
			lo := time.Duration(uint64(s)<<e) * time.Microsecond
			mid := lo
			if e > 0 {
				mid += time.Duration(uint64(1)<<e) * time.Microsecond / 2
			}
			return min(mid, h.max)
		}
	}
	return h.max
}
