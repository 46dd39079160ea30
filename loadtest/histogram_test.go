package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantilesWithinPrecision compares the histogram's quantiles
// with exact ones from the sorted samples, over latencies spread from
// microseconds to seconds.
func TestHistogramQuantilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var samples []time.Duration
	for range 100000 {
		// Log-uniform from 1 µs to ~10 s.
		d := time.Duration(math.Exp(rng.Float64()*math.Log(1e7))) * time.Microsecond
		samples = append(samples, d)
		h.Record(d)
	}
	slices.Sort(samples)
	qs := []float64{0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1}
	for q := 0.30; q < 1; q += 0.005 {
		qs = append(qs, q)
	}
	for _, q := range qs {
		exact := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.Quantile(q)
		if diff := math.Abs(float64(got - exact)); diff > float64(exact)/64+float64(time.Microsecond) {
			t.Errorf("q%.3f = %s, exact %s (off by %.2f%%)", q, got, exact, 100*diff/float64(exact))
		}
	}
	if h.Count() != 100000 || h.Max() != samples[len(samples)-1] {
		t.Errorf("count %d max %s", h.Count(), h.Max())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
	// Beyond the range: the last bucket (about 9.5 hours), and the max is
	// kept exactly.
	empty.Record(20 * time.Hour)
	if q := empty.Quantile(0.99); q < 9*time.Hour || q > 20*time.Hour || empty.Max() != 20*time.Hour {
		t.Errorf("one 20h sample: q99 %s, max %s", q, empty.Max())
	}
}

func TestOptionsBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"nothing", Options{}, false},
		{"c", Options{Concurrency: 4}, true},
		{"c too high", Options{Concurrency: MaxConcurrency + 1}, false},
		{"c negative", Options{Concurrency: -1}, false},
		{"rate", Options{Rate: 50}, true},
		{"rate too high", Options{Rate: MaxRate + 1}, false},
		{"rate negative", Options{Rate: -1, Concurrency: 1}, false},
		{"too long", Options{Concurrency: 1, Duration: MaxDuration + time.Second}, false},
		{"too short", Options{Concurrency: 1, Duration: time.Millisecond}, false},
		{"bad url", Options{Concurrency: 1, PublicURL: "ftp://x"}, false},
		{"relative url", Options{Concurrency: 1, PublicURL: "/x"}, false},
	} {
		err := tc.o.Check()
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	o := Options{Rate: 10}
	if err := o.Check(); err != nil || o.Concurrency != DefaultRateConcurrency || o.Duration != DefaultDuration {
		t.Errorf("defaults: %+v %v", o, err)
	}
}
