package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// spread is a figure measured several times: its median and range.
type spread struct{ med, min, max float64 }

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return spread{med: median(s), min: s[0], max: s[len(s)-1]}
}

// median of sorted values.
func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile p (0–100) of sorted durations, nearest rank.
func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func durations(xs []time.Duration) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}

// durSpread is the median and range of durations, with the p99.
type durSpread struct {
	n                  int
	med, p99, min, max time.Duration
}

func durSpreadOf(xs []time.Duration) durSpread {
	if len(xs) == 0 {
		return durSpread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return durSpread{n: len(s), med: time.Duration(median(durations(s))), p99: percentile(s, 99), min: s[0], max: s[len(s)-1]}
}

func (d durSpread) String() string {
	return fmt.Sprintf("median %s p99 %s (%s)", ms(d.med), ms(d.p99), durRange(d))
}

// interval is the median of paired measurements with a distribution-free
// confidence interval for it: lo and hi are the k-th smallest and the k-th
// largest of the n values, which bracket the true median with probability
// coverage whatever the values' distribution (each value falls below the
// median with probability ½, so the count below it is Binomial(n, ½)).
type interval struct {
	n, k        int
	med, lo, hi float64
	coverage    float64
}

// ciLevel is the confidence wanted for an interval of the median.
const ciLevel = 0.95

// medianCI is the median of xs and the narrowest order-statistic interval
// whose coverage is at least ciLevel. With fewer than 6 values no such
// interval exists; it is then min–max, with its lower coverage.
func medianCI(xs []float64) interval {
	n := len(xs)
	if n == 0 {
		return interval{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k, cov := 1, orderCoverage(n, 1)
	for k+1 <= n/2 && orderCoverage(n, k+1) >= ciLevel {
		k++
		cov = orderCoverage(n, k)
	}
	return interval{n: n, k: k, med: median(s), lo: s[k-1], hi: s[n-k], coverage: cov}
}

// orderCoverage is the probability that the k-th smallest and k-th largest
// of n values bracket their median: 1 − 2·P(Binomial(n, ½) ≤ k−1).
func orderCoverage(n, k int) float64 {
	p := math.Ldexp(1, -n) // P(B = 0)
	tail := 0.0
	for i := range k {
		if i > 0 {
			p = p * float64(n-i+1) / float64(i)
		}
		tail += p
	}
	return 1 - 2*tail
}

// ordinal is 1st, 2nd, 3rd, 4th, …
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// method says which order statistics an interval of n values is, and its
// coverage, for the report.
func (iv interval) method() string {
	return fmt.Sprintf("the %s and %s of the %d sorted values, which bracket the median with probability %.1f%%", ordinal(iv.k), ordinal(iv.n-iv.k+1), iv.n, iv.coverage*100)
}

// format is the median and its interval: "0.991 [0.978–1.004]", with digits
// decimals.
func (iv interval) format(digits int) string {
	return fmt.Sprintf("%.*f [%.*f–%.*f]", digits, iv.med, digits, iv.lo, digits, iv.hi)
}
