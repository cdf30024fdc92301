// Package svg draws the dashboard's charts as inline SVG on the server: a
// few primitives and three chart shapes (stacked columns with a line,
// horizontal bars, paired bars). Output is plain markup styled by the
// page's CSS classes, so nothing is fetched or scripted in the browser.
// All text is XML-escaped; numbers are formatted with fixed precision.
package svg

import (
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Canvas accumulates the elements of one SVG image.
type Canvas struct {
	w, h int
	b    strings.Builder
}

// New starts an image of w x h user units; title is its accessible name.
func New(w, h int, title string) *Canvas {
	c := &Canvas{w: w, h: h}
	c.b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ` + itoa(w) + ` ` + itoa(h) +
		`" width="` + itoa(w) + `" height="` + itoa(h) + `" role="img" aria-label="` + esc(title) + `"><title>` + esc(title) + `</title>`)
	return c
}

func itoa(i int) string { return strconv.Itoa(i) }

func num(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// Rect draws a rectangle with a hover title (omitted when empty).
func (c *Canvas) Rect(x, y, w, h float64, class, title string) {
	c.b.WriteString(`<rect x="` + num(x) + `" y="` + num(y) + `" width="` + num(math.Max(w, 0)) + `" height="` + num(math.Max(h, 0)) + `" class="` + esc(class) + `">`)
	if title != "" {
		c.b.WriteString(`<title>` + esc(title) + `</title>`)
	}
	c.b.WriteString(`</rect>`)
}

// Line draws a straight line.
func (c *Canvas) Line(x1, y1, x2, y2 float64, class string) {
	c.b.WriteString(`<line x1="` + num(x1) + `" y1="` + num(y1) + `" x2="` + num(x2) + `" y2="` + num(y2) + `" class="` + esc(class) + `"/>`)
}

// Point is a position in user units.
type Point struct{ X, Y float64 }

// Polyline joins points; fewer than two draw nothing.
func (c *Canvas) Polyline(pts []Point, class string) {
	if len(pts) < 2 {
		return
	}
	var s []string
	for _, p := range pts {
		s = append(s, num(p.X)+","+num(p.Y))
	}
	c.b.WriteString(`<polyline points="` + strings.Join(s, " ") + `" class="` + esc(class) + `"/>`)
}

// Circle draws a dot with a hover title.
func (c *Canvas) Circle(x, y, r float64, class, title string) {
	c.b.WriteString(`<circle cx="` + num(x) + `" cy="` + num(y) + `" r="` + num(r) + `" class="` + esc(class) + `">`)
	if title != "" {
		c.b.WriteString(`<title>` + esc(title) + `</title>`)
	}
	c.b.WriteString(`</circle>`)
}

// Text writes a label; anchor is start, middle or end.
func (c *Canvas) Text(x, y float64, anchor, class, s string) {
	c.b.WriteString(`<text x="` + num(x) + `" y="` + num(y) + `" text-anchor="` + esc(anchor) + `" class="` + esc(class) + `">` + esc(s) + `</text>`)
}

// HTML closes the image and returns it for a template.
func (c *Canvas) HTML() template.HTML {
	return template.HTML(c.b.String() + `</svg>`) //nolint:gosec // every attribute and text above is escaped
}

// Column is one stacked column: values bottom-up, one per layer.
type Column struct {
	Label  string
	Values []float64
	// Line is the column's value of the overlaid line (nil: no point).
	Line *float64
}

// Stacked draws stacked columns (layers named and styled by names and
// classes) with an optional line on a second axis from lineMin to lineMax,
// e.g. NPS on -100..100 over the respondents split.
func Stacked(title string, w, h int, names, classes []string, cols []Column, lineName string, lineMin, lineMax float64) template.HTML {
	c := New(w, h, title)
	const left, right, top, bottom = 44.0, 44.0, 28.0, 40.0
	pw, ph := float64(w)-left-right, float64(h)-top-bottom
	max := 0.0
	for _, col := range cols {
		sum := 0.0
		for _, v := range col.Values {
			sum += v
		}
		max = math.Max(max, sum)
	}
	// Four grid steps of a round size, so counts label as whole numbers.
	max = 4 * niceCeil(math.Max(max, 1)/4)
	if max < 4 {
		max = 4
	}
	// Axes and grid: left = counts, right = line.
	for i := 0; i <= 4; i++ {
		y := top + ph - ph*float64(i)/4
		c.Line(left, y, left+pw, y, "grid")
		c.Text(left-6, y+4, "end", "axis", num(max*float64(i)/4))
		if lineName != "" {
			c.Text(left+pw+6, y+4, "start", "axis", num(lineMin+(lineMax-lineMin)*float64(i)/4))
		}
	}
	n := len(cols)
	if n == 0 {
		c.Text(left+pw/2, top+ph/2, "middle", "empty", "no data in this period")
		return c.HTML()
	}
	slot := pw / float64(n)
	bw := math.Max(slot*0.7, 1)
	every := 1 + n/12 // keep labels readable
	var pts []Point
	for i, col := range cols {
		x := left + slot*float64(i) + (slot-bw)/2
		y := top + ph
		for j, v := range col.Values {
			hgt := ph * v / max
			y -= hgt
			cls := ""
			if j < len(classes) {
				cls = classes[j]
			}
			name := ""
			if j < len(names) {
				name = names[j]
			}
			if v > 0 {
				c.Rect(x, y, bw, hgt, cls, col.Label+": "+num(v)+" "+name)
			}
		}
		if i%every == 0 {
			c.Text(x+bw/2, top+ph+16, "middle", "axis", col.Label)
		}
		if col.Line != nil {
			ly := top + ph - ph*(*col.Line-lineMin)/(lineMax-lineMin)
			pts = append(pts, Point{x + bw/2, ly})
			c.Circle(x+bw/2, ly, 3, "line-dot", col.Label+": "+lineName+" "+num(*col.Line))
		} else if len(pts) > 0 {
			c.Polyline(pts, "line")
			pts = nil
		}
	}
	c.Polyline(pts, "line")
	// Legend.
	lx := left
	for j, name := range names {
		cls := ""
		if j < len(classes) {
			cls = classes[j]
		}
		c.Rect(lx, 8, 10, 10, cls, "")
		c.Text(lx+14, 17, "start", "legend", name)
		lx += 24 + 7*float64(len(name))
	}
	if lineName != "" {
		c.Line(lx, 13, lx+14, 13, "line")
		c.Text(lx+18, 17, "start", "legend", lineName)
	}
	return c.HTML()
}

// Bar is one horizontal bar with its label and the note printed after it.
type Bar struct {
	Label string
	Value float64
	Note  string
	Class string
}

// HBars draws labelled horizontal bars scaled to the largest value.
func HBars(title string, w int, bars []Bar) template.HTML {
	const rowH, labelW, noteW = 28.0, 130.0, 150.0
	h := int(rowH*float64(len(bars))) + 8
	if len(bars) == 0 {
		h = 40
	}
	c := New(w, h, title)
	if len(bars) == 0 {
		c.Text(float64(w)/2, 24, "middle", "empty", "no data")
		return c.HTML()
	}
	max := 0.0
	for _, b := range bars {
		max = math.Max(max, b.Value)
	}
	if max == 0 {
		max = 1
	}
	pw := float64(w) - labelW - noteW
	for i, b := range bars {
		y := 4 + rowH*float64(i)
		c.Text(labelW-8, y+rowH/2+4, "end", "label", b.Label)
		c.Rect(labelW, y+4, pw*b.Value/max, rowH-8, b.Class, b.Label+": "+b.Note)
		c.Text(labelW+pw*b.Value/max+6, y+rowH/2+4, "start", "value", b.Note)
	}
	return c.HTML()
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten, for axis labels.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
