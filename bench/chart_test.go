package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// fakeReloadRun is a run of n reloads over dur with rps answered per
// second, and failed requests at the given buckets.
func fakeReloadRun(name string, n int, dur time.Duration, rps int64, failAt map[int]int64) *reloadRun {
	r := &reloadRun{server: name, reloads: n, dur: dur, kindOK: make([]int64, len(loadKinds)), kindFail: make([]int64, len(loadKinds))}
	buckets := int(dur / bucket)
	for i := range buckets {
		ok := rps * int64(bucket) / int64(time.Second)
		r.ok = append(r.ok, ok)
		r.fail = append(r.fail, failAt[i])
		r.kindOK[0] += ok
		r.kindFail[0] += failAt[i]
	}
	for i := range n {
		r.marks = append(r.marks, time.Duration(i+1)*dur/time.Duration(n+2))
	}
	return r
}

func TestReloadChartSideBySide(t *testing.T) {
	runs := []*reloadRun{
		fakeReloadRun("gozd", 50, 13*time.Second, 11000, nil),
		fakeReloadRun("tableflip", 50, 14*time.Second, 9000, map[int]int64{20: 3, 40: 7, 90: 1}),
	}
	svg := reloadChart(runs)
	// Well-formed XML, or a browser shows nothing.
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
	for _, want := range []string{
		`width="960"`,                       // two panels of 480
		">gozd</text>", ">tableflip</text>", // a panel each
		"0 of 143,000 failed",             // gozd's verdict
		"11 of 126,011 failed",            // tableflip's
		"no failed request or connection", // gozd's empty strip
		"<title>7 failed at 4.0s</title>", // a tableflip bar
		`stroke-dasharray="2,3"`,          // reload marks
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if n := strings.Count(svg, "stroke-dasharray"); n != 100 {
		t.Errorf("chart has %d reload marks, want 100", n)
	}
	if testing.Verbose() {
		t.Log(svg)
	}
}
