package main

import (
	"fmt"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// writeChart draws exchanges/s as grouped bars: a group per load, a bar per
// server, each server's best round.
func writeChart(r *results, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Launcelot servers on %d cores, one load generator, %s per load", r.Host.CPUs, r.Duration)
	p.Y.Label.Text = "exchanges/s (thousands)"
	p.Y.Min = 0
	p.Y.Tick.Marker = plainTicks{}
	loads, servers := r.loads(), r.servers()
	p.NominalX(loads...)
	p.X.Min, p.X.Max = -0.5, float64(len(loads))-0.5
	p.Add(plotter.NewGrid())
	width := vg.Points(150 / float64(len(servers)))
	var top float64
	for i, server := range servers {
		v := rates(r, server, loads)
		offset := vg.Length(float64(i)-float64(len(servers)-1)/2) * width
		if err := addBars(p, v, width, offset, i, server); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		top = max(top, slices.Max(v))
	}
	p.Y.Max = top * 1.3 // room for the legend and the labels
	p.Legend.Top = true
	p.Legend.Left = true
	if err := p.Save(9*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// plainTicks are plot's default ticks labelled without trailing zeros.
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// addBars adds one server's bars, each labelled with its value.
func addBars(p *plot.Plot, v plotter.Values, width, offset vg.Length, i int, server string) error {
	bars, err := plotter.NewBarChart(v, width)
	if err != nil {
		return err
	}
	bars.Color = plotutil.Color(i)
	bars.LineStyle.Width = 0
	bars.Offset = offset
	xys := make(plotter.XYs, len(v))
	texts := make([]string, len(v))
	for j, y := range v {
		xys[j] = plotter.XY{X: float64(j), Y: y}
		texts[j] = fmt.Sprintf("%.0f", y)
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return err
	}
	for j := range labels.TextStyle {
		labels.TextStyle[j].XAlign = text.XCenter
		labels.TextStyle[j].Font.Size = vg.Points(7)
	}
	labels.Offset = vg.Point{X: offset, Y: vg.Points(2)}
	p.Add(bars, labels)
	p.Legend.Add(server, bars)
	return nil
}

// rates are a server's best exchanges/s per load, in thousands.
func rates(r *results, server string, loads []string) plotter.Values {
	v := make(plotter.Values, len(loads))
	for i, load := range loads {
		if b := r.best(server, load); b != nil && b.Result != nil {
			v[i] = b.Result.ExchangesPerS / 1000
		}
	}
	return v
}
