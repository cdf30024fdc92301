package bench_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/klantreis/journey/bench/system"
)

type svgDoc struct {
	Width     string `xml:"width,attr"`
	Polylines []struct {
		Stroke string `xml:"stroke,attr"`
		Points string `xml:"points,attr"`
	} `xml:"polyline"`
	Texts []string `xml:"text"`
}

func TestChartWriteSVG(t *testing.T) {
	c := bench.Chart{
		Title:  "soak <test> & co",
		XLabel: "seconds",
		Left: bench.Axis{Label: "events/s", Series: []bench.Series{
			{Name: "published", Color: "#111111", Points: []bench.Point{{0, 0}, {5, 7500}, {10, 10000}}},
			{Name: "empty", Color: "#222222"},
		}},
		Right: bench.Axis{Label: "p99 (ms)", Series: []bench.Series{
			{Name: "p99", Color: "#333333", Points: []bench.Point{{0, 40}, {10, 80}}},
		}},
	}
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not well-formed XML: %v\n%s", err, buf.String())
	}
	if doc.Width != "900" {
		t.Errorf("width %q, want the default 900", doc.Width)
	}
	if len(doc.Polylines) != 2 {
		t.Fatalf("%d polylines, want 2 (the empty series is skipped)", len(doc.Polylines))
	}
	pts := parsePoints(t, doc.Polylines[0].Points)
	// The plot area is x 70..830 and y 40..300 (900x360 minus padding).
	// The left axis tops out at 10000, so (10, 10000) is the top-right
	// corner and (0, 0) the bottom-left.
	want := [][2]float64{{70, 300}, {450, 105}, {830, 40}}
	for i, w := range want {
		if abs(pts[i][0]-w[0]) > 0.11 || abs(pts[i][1]-w[1]) > 0.11 {
			t.Errorf("point %d at %v, want %v", i, pts[i], w)
		}
	}
	// The right axis scales on its own: 80 ms rounds up to 100.
	rp := parsePoints(t, doc.Polylines[1].Points)
	if abs(rp[1][1]-(300-0.8*260)) > 0.11 {
		t.Errorf("right series top point at y %v, want %v", rp[1][1], 300-0.8*260)
	}
	all := strings.Join(doc.Texts, "|")
	for _, s := range []string{"soak <test> & co", "published", "p99", "10k", "events/s"} {
		if !strings.Contains(all, s) {
			t.Errorf("chart text lacks %q: %s", s, all)
		}
	}
	if strings.Contains(all, "empty") {
		t.Error("the empty series has a legend entry")
	}
}

func TestChartFixedRangeDropsOutsidePoints(t *testing.T) {
	c := bench.Chart{XFrom: 0, XTo: 10, Left: bench.Axis{Series: []bench.Series{
		{Name: "a", Color: "red", Points: []bench.Point{{-1, 5}, {0, 5}, {10, 10}, {11, 50}}},
	}}}
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	pts := parsePoints(t, doc.Polylines[0].Points)
	// Two points kept; the axis tops out at 10 (not 50), so (10, 10) is
	// the top-right corner.
	if len(pts) != 2 || abs(pts[1][0]-830) > 0.11 || abs(pts[1][1]-40) > 0.11 {
		t.Errorf("points %v, want 2 ending at the top-right corner (830, 40)", pts)
	}
}

func TestChartWithoutPoints(t *testing.T) {
	if err := (bench.Chart{Title: "nothing"}).WriteSVG(io.Discard); err != nil {
		t.Fatal(err)
	}
}

func parsePoints(t *testing.T, s string) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for _, p := range strings.Fields(s) {
		x, y, ok := strings.Cut(p, ",")
		if !ok {
			t.Fatalf("bad point %q", p)
		}
		fx, err1 := strconv.ParseFloat(x, 64)
		fy, err2 := strconv.ParseFloat(y, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad point %q", p)
		}
		out = append(out, [2]float64{fx, fy})
	}
	return out
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
