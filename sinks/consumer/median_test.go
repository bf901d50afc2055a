package consumer

import (
	"math"
	"slices"
	"testing"
)

// median returns the median of xs (sorting a copy).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// medianInterval returns a confidence interval of at least 95% for the
// median of the population xs were drawn from, whatever its shape: the
// sorted xs' k-th from either end, with k the most values that each tail
// may hold below the interval with a chance of at most 2.5% (the sign
// test: the count of draws below the median is Binomial(n, 1/2)). With
// fewer than 6 values it is the smallest to the largest, which covers
// less than 95%.
func medianInterval(xs []float64) (lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0, 0
	}
	k, p, tail := 0, math.Pow(0.5, float64(n)), 0.0 // p: P(X = i), tail: P(X <= i)
	for i := 0; i < n; i++ {
		if tail += p; tail > 0.025 {
			break
		}
		k = i
		p = p * float64(n-i) / float64(i+1)
	}
	return s[k], s[n-1-k]
}

func TestMedianInterval(t *testing.T) {
	seq := func(n int) []float64 { // n..1, unsorted on purpose
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(n - i)
		}
		return xs
	}
	for _, tc := range []struct {
		n      int
		lo, hi float64 // 1-based ranks of the bounds
	}{
		{1, 1, 1},
		{5, 1, 5},   // P(X <= 0) = 1/32 > 2.5%: the extremes
		{6, 1, 6},   // P(X <= 0) = 1/64, P(X <= 1) = 7/64
		{15, 4, 12}, // P(X <= 3) = 1.76%, P(X <= 4) = 5.92%
		{20, 6, 15}, // P(X <= 5) = 2.07%, P(X <= 6) = 5.77%
	} {
		lo, hi := medianInterval(seq(tc.n))
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("n=%d: interval %v..%v, want ranks %v..%v", tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
}
