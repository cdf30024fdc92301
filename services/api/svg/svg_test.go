package svg_test

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/klantreis/journey/services/api/svg"
)

// The charts must be well-formed XML with every label escaped, whatever the
// labels hold (they come from customer and account ids).
func TestChartsAreWellFormedAndEscaped(t *testing.T) {
	evil := `<script>alert("x")</script> & ' "`
	v := 12.0
	charts := map[string]string{
		"stacked": string(svg.Stacked(evil, 600, 300, []string{"a", evil}, []string{"p", "d"},
			[]svg.Column{{Label: evil, Values: []float64{3, 4}, Line: &v}, {Label: "x", Values: []float64{0, 1}}}, "NPS", -100, 100)),
		"empty":  string(svg.Stacked("t", 600, 300, nil, nil, nil, "", 0, 1)),
		"hbars":  string(svg.HBars(evil, 600, []svg.Bar{{Label: evil, Value: 2, Note: evil, Class: "c"}, {Label: "z", Value: 0}})),
		"hempty": string(svg.HBars("t", 600, nil)),
	}
	for name, s := range charts {
		if strings.Contains(s, "<script>") {
			t.Errorf("%s: unescaped label: %s", name, s)
		}
		d := xml.NewDecoder(strings.NewReader(s))
		depth := 0
		for {
			tok, err := d.Token()
			if err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s: not well-formed: %v\n%s", name, err, s)
				}
				break
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
		}
		if depth != 0 {
			t.Errorf("%s: unbalanced elements", name)
		}
	}
	// Three stacked rects + one for the legend each: the values 3, 4 and 1
	// are drawn, the 0 is not.
	if got := strings.Count(charts["stacked"], "<rect"); got != 3+2 {
		t.Errorf("stacked: %d rects, want 5", got)
	}
}
