package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// reloadChart draws each reload run as a panel: requests per second
// answered, failed requests per 100 ms beneath, and a dashed line at every
// reload signal. Hand-written SVG, no dependencies.
func reloadChart(runs []*reloadRun) string {
	const (
		width              = 960
		left, right        = 72, 24
		title              = 34
		plotH              = 200
		gap                = 26 // between the plot and the failure strip
		failH              = 50
		axisH              = 34
		panelH             = title + plotH + gap + failH + axisH
		plotW              = width - left - right
		rpsColor, failCol  = "#1f6fb2", "#d62728"
		markColor, gridCol = "#888", "#e3e3e3"
	)
	var maxDur time.Duration
	var maxRPS float64
	maxFail := int64(1)
	for _, r := range runs {
		maxDur = max(maxDur, r.dur)
		for i, n := range r.ok {
			if i < len(r.ok)-1 { // the last bucket is partial
				maxRPS = max(maxRPS, float64(n)*float64(time.Second/bucket))
			}
		}
		for _, n := range r.fail {
			maxFail = max(maxFail, n)
		}
	}
	yTop := niceCeil(maxRPS)
	secs := maxDur.Seconds()
	x := func(t float64) float64 { return left + t/secs*plotW }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, panelH*len(runs)+30, width, panelH*len(runs)+30)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13">`+
		`<tspan fill="%s">━ requests/s answered</tspan>   <tspan fill="%s">▮ failed requests per 100 ms</tspan>   <tspan fill="%s">┆ reload signal (binary replaced on disk before each)</tspan></text>`+"\n",
		left, rpsColor, failCol, markColor)
	for p, r := range runs {
		top := 30 + p*panelH
		plotTop := top + title
		failTop := plotTop + plotH + gap
		ok, fail := r.total()
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s: %d reloads under load, %s of %s requests failed</text>`+"\n",
			left, top+20, r.server, r.reloads, thousands(fail), thousands(ok+fail))

		// Grid and y axis of the throughput plot.
		for i := 0; i <= 4; i++ {
			v := yTop * float64(i) / 4
			y := float64(plotTop+plotH) - v/yTop*plotH
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, width-right, y, gridCol)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, thousands(int64(v)))
		}
		fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">requests/s</text>`+"\n", plotTop+plotH/2, plotTop+plotH/2)
		fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle" fill="%s">failed</text>`+"\n", failTop+failH/2, failTop+failH/2, failCol)

		// Reload marks across both plots.
		for _, m := range r.marks {
			xm := x(m.Seconds())
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="0.8" stroke-dasharray="3,3"/>`+"\n", xm, plotTop, xm, failTop+failH, markColor)
		}

		// Throughput line.
		var pts []string
		for i := 0; i < len(r.ok)-1; i++ {
			t := (float64(i) + 0.5) * bucket.Seconds()
			v := float64(r.ok[i]) * float64(time.Second/bucket)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(t), float64(plotTop+plotH)-v/yTop*plotH))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", rpsColor, strings.Join(pts, " "))

		// Failure strip: one bar per 100 ms with failures.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", left, failTop, plotW, failH, gridCol)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%d</text>`+"\n", left-6, failTop+8, maxFail)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">0</text>`+"\n", left-6, failTop+failH+4)
		bw := max(plotW*bucket.Seconds()/secs, 2)
		for i, n := range r.fail {
			if n == 0 {
				continue
			}
			h := math.Max(float64(n)/float64(maxFail)*failH, 2)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d failed at %.1fs</title></rect>`+"\n",
				x(float64(i)*bucket.Seconds()), float64(failTop+failH)-h, bw, h, failCol, n, float64(i)*bucket.Seconds())
		}
		if fail == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">no failed request or connection</text>`+"\n", left+8, failTop+failH/2+4)
		}

		// Time axis.
		axisY := failTop + failH
		step := 5.0
		if secs < 10 {
			step = 1
		}
		for t := 0.0; t <= secs; t += step {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`+"\n", x(t), axisY+20, t)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
