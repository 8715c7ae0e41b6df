package main

import (
	"fmt"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// writePlot draws pods Running over seconds since t0 into a PNG.
func writePlot(path string, series []sample, t0 time.Time, title string) error {
	p := plot.New()
	p.Title.Text = "Pods Running after POST: " + title
	p.X.Label.Text = "seconds since POST /replicasets"
	p.Y.Label.Text = "pods Running"
	pts := make(plotter.XYs, 0, len(series)+1)
	pts = append(pts, plotter.XY{X: 0, Y: 0})
	for _, s := range series {
		if s.at.Before(t0) {
			continue
		}
		pts = append(pts, plotter.XY{X: s.at.Sub(t0).Seconds(), Y: float64(s.running)})
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p.Add(line, plotter.NewGrid())
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}
