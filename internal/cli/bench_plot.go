//go:build bench

package cli

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotSkew draws each speaker's skew to the reference speaker (ms) over the
// seconds since the reference's first sound, with a line where measuring
// began, into a PNG file.
func plotSkew(path, title string, names []string, series []skewTrace, settleS float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since first sound"
	p.Y.Label.Text = fmt.Sprintf("heard later than %s (ms)", names[0])
	p.Add(plotter.NewGrid())
	var t0 int64
	for _, s := range series {
		if len(s) > 0 && (t0 == 0 || s[0].tNs < t0) {
			t0 = s[0].tNs
		}
	}
	for i, s := range series {
		pts := make(plotter.XYs, len(s))
		for j, pt := range s {
			pts[j].X = float64(pt.tNs-t0) / 1e9
			pts[j].Y = float64(pt.skewNs) / 1e6
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = plotutil.Color(i)
		p.Add(line)
		p.Legend.Add(names[i+1], line)
	}
	if settleS > 0 {
		settle, err := plotter.NewLine(plotter.XYs{{X: settleS, Y: p.Y.Min}, {X: settleS, Y: p.Y.Max}})
		if err != nil {
			return err
		}
		settle.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		p.Add(settle)
		p.Legend.Add("measuring from here", settle)
	}
	p.Legend.Top = true
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}
