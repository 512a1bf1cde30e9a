package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// reloadChart draws the reload runs side by side, one panel each on the
// same scales: requests per second answered, failed requests per 100 ms
// beneath, and a dashed line at every reload signal. Hand-written SVG, no
// dependencies; sized to stay readable at the width of a GitHub README.
func reloadChart(runs []*reloadRun) string {
	const (
		panelW             = 480
		left, right        = 60, 16
		top                = 44 // the legend above the panels
		title              = 46
		plotH              = 220
		gap                = 30 // between the plot and the failure strip
		failH              = 70
		axisH              = 44
		panelH             = title + plotH + gap + failH + axisH
		plotW              = panelW - left - right
		rpsColor, failCol  = "#1f6fb2", "#d62728"
		markColor, gridCol = "#999", "#e3e3e3"
	)
	var maxDur time.Duration
	var maxRPS float64
	maxFail := int64(1)
	for _, r := range runs {
		maxDur = max(maxDur, r.dur)
		for _, n := range r.ok {
			maxRPS = max(maxRPS, float64(n)*float64(time.Second/bucket))
		}
		for _, n := range r.fail {
			maxFail = max(maxFail, n)
		}
	}
	yTop := niceCeil(maxRPS)
	failTop := niceCeil(float64(maxFail))
	secs := max(maxDur.Seconds(), 0.1)
	width := panelW * max(len(runs), 1)
	height := top + panelH

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14"><tspan fill="%s">━ requests/s answered</tspan>   <tspan fill="%s">▮ failed requests and connections per 100 ms</tspan></text>`+"\n", left, rpsColor, failCol)
	fmt.Fprintf(&b, `<text x="%d" y="36" font-size="13" fill="#555">┆ reload signal, the other build installed on disk before each; both servers on the same scales, under the same load</text>`+"\n", left)
	for c, r := range runs {
		x0 := c * panelW
		x := func(t float64) float64 { return float64(x0+left) + t/secs*plotW }
		plotTop := top + title
		failY := plotTop + plotH + gap
		ok, fail := r.total()
		verdict := fmt.Sprintf("%s of %s failed", thousands(fail), thousands(ok+fail))
		color := "#222"
		if fail > 0 {
			color = failCol
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="17" font-weight="bold">%s</text>`+"\n", x0+left, top+18, r.server)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="%s">%d reloads: %s</text>`+"\n", x0+left, top+36, color, r.reloads, verdict)

		// Grid and y axis of the throughput plot.
		for i := 0; i <= 4; i++ {
			v := yTop * float64(i) / 4
			y := float64(plotTop+plotH) - v/yTop*plotH
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", x0+left, y, x0+left+plotW, y, gridCol)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0+left-6, y+4, compact(v))
		}
		mid := plotTop + plotH/2
		fmt.Fprintf(&b, `<text x="%d" y="%d" transform="rotate(-90 %d %d)" text-anchor="middle">requests/s</text>`+"\n", x0+16, mid, x0+16, mid)
		mid = failY + failH/2
		fmt.Fprintf(&b, `<text x="%d" y="%d" transform="rotate(-90 %d %d)" text-anchor="middle" fill="%s">failed</text>`+"\n", x0+16, mid, x0+16, mid, failCol)

		// Reload marks across both plots.
		for _, m := range r.marks {
			xm := x(m.Seconds())
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="0.7" stroke-dasharray="2,3"/>`+"\n", xm, plotTop, xm, failY+failH, markColor)
		}

		// Throughput line.
		var pts []string
		for i := range r.ok {
			t := (float64(i) + 0.5) * bucket.Seconds()
			v := float64(r.ok[i]) * float64(time.Second/bucket)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(t), float64(plotTop+plotH)-v/yTop*plotH))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", rpsColor, strings.Join(pts, " "))

		// Failure strip: one bar per 100 ms with failures.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", x0+left, failY, plotW, failH, gridCol)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", x0+left-6, failY+10, compact(failTop))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">0</text>`+"\n", x0+left-6, failY+failH+4)
		bw := max(plotW*bucket.Seconds()/secs, 2)
		for i, n := range r.fail {
			if n == 0 {
				continue
			}
			h := math.Max(float64(n)/failTop*failH, 2)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d failed at %.1fs</title></rect>`+"\n",
				x(float64(i)*bucket.Seconds()), float64(failY+failH)-h, bw, h, failCol, n, float64(i)*bucket.Seconds())
		}
		if fail == 0 {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">no failed request or connection</text>`+"\n", x0+left+8, failY+failH/2+5)
		}

		// Time axis.
		axisY := failY + failH
		step := 5.0
		if secs < 20 {
			step = 2
		}
		for t := 0.0; t <= secs; t += step {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%gs</text>`+"\n", x(t), axisY+18, t)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555">time since the load started</text>`+"\n", x0+left+plotW/2, axisY+38)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// compact formats an axis value: 1,500 as 1.5k, 20,000 as 20k.
func compact(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
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
