package main

import (
	"fmt"
	"slices"
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
