package main

import (
	"math"
	"testing"
)

func TestMedianCI(t *testing.T) {
	for _, tc := range []struct {
		n, k     int
		coverage float64
	}{
		// Binomial order statistics, as tabulated for the median:
		// n = 10 → 2nd and 9th, 1 − 2·11/1024; n = 20 → 6th and 15th.
		{10, 2, 1 - 2*11.0/1024},
		{20, 6, 0.958610},
		{6, 1, 1 - 2/64.0},
		// Too few values for 95%: min–max, with what it covers.
		{5, 1, 1 - 2/32.0},
		{2, 1, 0.5},
	} {
		xs := make([]float64, tc.n)
		for i := range xs {
			xs[i] = float64((i*7)%tc.n + 1) // 1..n, shuffled
		}
		iv := medianCI(xs)
		if iv.k != tc.k || iv.lo != float64(tc.k) || iv.hi != float64(tc.n-tc.k+1) {
			t.Errorf("n=%d: k=%d interval [%v, %v], want k=%d [%d, %d]", tc.n, iv.k, iv.lo, iv.hi, tc.k, tc.k, tc.n-tc.k+1)
		}
		if math.Abs(iv.coverage-tc.coverage) > 1e-6 {
			t.Errorf("n=%d: coverage %.6f, want %.6f", tc.n, iv.coverage, tc.coverage)
		}
		if want := float64(tc.n+1) / 2; iv.med != want {
			t.Errorf("n=%d: median %v, want %v", tc.n, iv.med, want)
		}
	}
	if iv := medianCI(nil); iv.n != 0 {
		t.Errorf("no values: %+v", iv)
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		med, lo, hi           float64
		higherIsBetter        bool
		met, shown, straddles bool
	}{
		{0.99, 0.985, 0.995, true, true, true, false},
		{0.99, 0.97, 1.01, true, true, false, true},
		{0.975, 0.96, 0.99, true, false, false, true},
		{0.95, 0.94, 0.97, true, false, false, false},
		{0.9801, 0.9799, 0.99, true, true, true, false}, // judged at 3 decimals
		{1.01, 1.00, 1.015, false, true, true, false},
		{1.01, 1.00, 1.03, false, true, false, true},
		{1.05, 1.03, 1.07, false, false, false, false},
	} {
		j := judge(interval{n: 10, med: tc.med, lo: tc.lo, hi: tc.hi}, map[bool]float64{true: 0.98, false: 1.02}[tc.higherIsBetter], tc.higherIsBetter)
		if j.met != tc.met || j.shown != tc.shown || j.straddles != tc.straddles {
			t.Errorf("%.4f [%.4f–%.4f]: %+v, want met %v shown %v straddles %v", tc.med, tc.lo, tc.hi, j, tc.met, tc.shown, tc.straddles)
		}
	}
}
