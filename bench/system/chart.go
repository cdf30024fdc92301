package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// Point is one sample of a series.
type Point struct{ X, Y float64 }

// Series is one line of a chart.
type Series struct {
	Name   string
	Color  string // any SVG colour
	Points []Point
}

// Axis is a y axis with the series drawn against it.
type Axis struct {
	Label  string
	Series []Series
}

// Chart is a line chart with a shared x axis and up to two y axes (Right
// may be empty). It is written as a self-contained SVG, so the docs need
// no image tooling.
type Chart struct {
	Title  string
	XLabel string
	Left   Axis
	Right  Axis
	Width  int // default 900
	Height int // default 360
	// XFrom and XTo fix the x range (default: the points' range).
	XFrom, XTo float64
}

const (
	padL, padR, padT, padB = 70.0, 70.0, 40.0, 60.0
)

// WriteSVG renders c. Empty series are skipped; an axis without points
// spans 0..1.
func (c Chart) WriteSVG(w io.Writer) error {
	if c.Width == 0 {
		c.Width = 900
	}
	if c.Height == 0 {
		c.Height = 360
	}
	W, H := float64(c.Width), float64(c.Height)
	pw, ph := W-padL-padR, H-padT-padB
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, a := range []Axis{c.Left, c.Right} {
		for _, s := range a.Series {
			for _, p := range s.Points {
				xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
			}
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 0, 1
	}
	if c.XTo > c.XFrom {
		xmin, xmax = c.XFrom, c.XTo
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	lmax := niceMax(axisMax(c.Left, xmin, xmax))
	rmax := niceMax(axisMax(c.Right, xmin, xmax))
	sx := func(x float64) float64 { return padL + (x-xmin)/(xmax-xmin)*pw }
	sy := func(y, top float64) float64 { return padT + ph - y/top*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", c.Width, c.Height, c.Width, c.Height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padL, esc(c.Title))
	// Grid and left ticks.
	for i := 0; i <= 5; i++ {
		v := lmax * float64(i) / 5
		y := sy(v, lmax)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y, padL+pw, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, y+4, tick(v))
		if len(c.Right.Series) > 0 {
			fmt.Fprintf(&b, `<text x="%g" y="%.1f">%s</text>`+"\n", padL+pw+6, y+4, tick(rmax*float64(i)/5))
		}
	}
	for i := 0; i <= 6; i++ {
		v := xmin + (xmax-xmin)*float64(i)/6
		x := sx(v)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`+"\n", x, padT+ph+18, tick(v))
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#888"/>`+"\n", padL, padT, pw, ph)
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", padL+pw/2, H-18, esc(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16 %g) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+ph/2, esc(c.Left.Label))
	if len(c.Right.Series) > 0 {
		fmt.Fprintf(&b, `<text transform="translate(%g %g) rotate(90)" text-anchor="middle">%s</text>`+"\n", W-14, padT+ph/2, esc(c.Right.Label))
	}
	// Lines and legend.
	legend := 0
	for ai, a := range []Axis{c.Left, c.Right} {
		top := lmax
		dash := ""
		if ai == 1 {
			top, dash = rmax, ` stroke-dasharray="6 3"`
		}
		for _, s := range a.Series {
			if len(s.Points) == 0 {
				continue
			}
			var pts []string
			for _, p := range s.Points {
				if p.X < xmin || p.X > xmax || math.IsNaN(p.Y) {
					continue // outside a fixed range
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(p.X), sy(p.Y, top)))
			}
			if len(pts) == 0 {
				continue
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`+"\n", esc(s.Color), dash, strings.Join(pts, " "))
			lx := padL + float64(legend)*200
			fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, lx, H-4-4, lx+20, H-4-4, esc(s.Color), dash)
			fmt.Fprintf(&b, `<text x="%g" y="%g">%s</text>`+"\n", lx+24, H-4, esc(s.Name))
			legend++
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func axisMax(a Axis, xmin, xmax float64) float64 {
	m := 0.0
	for _, s := range a.Series {
		for _, p := range s.Points {
			if p.X >= xmin && p.X <= xmax && !math.IsNaN(p.Y) && !math.IsInf(p.Y, 0) {
				m = math.Max(m, p.Y)
			}
		}
	}
	return m
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func tick(v float64) string {
	switch {
	case v >= 1e6:
		return trim(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case v >= 1e4:
		return trim(fmt.Sprintf("%.1f", v/1e3)) + "k"
	default:
		return trim(fmt.Sprintf("%.2f", v))
	}
}

func trim(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }
