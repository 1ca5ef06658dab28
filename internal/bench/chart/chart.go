// Package chart draws a bench.Report as a chart (SVG or PNG) with
// gonum.org/v1/plot: latency percentiles per operation and throughput per
// concurrency level. It is a package of its own so that only what draws
// charts depends on the plotting library.
package chart

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/noxrunner/nox/internal/bench"
)

// The formats Write draws.
const (
	SVG = "svg"
	PNG = "png"
)

// ErrFormat is returned (wrapped) by Write for a format it does not draw.
var ErrFormat = errors.New("unknown chart format")

// FormatOf returns the format a chart written to path should have: PNG
// for a name ending in .png (in any case), else SVG.
func FormatOf(path string) string {
	if strings.EqualFold(filepath.Ext(path), ".png") {
		return PNG
	}
	return SVG
}

// size of the chart: two panels side by side.
const (
	width  = 30 * vg.Centimeter
	height = 12 * vg.Centimeter
)

// palette of the series: p50, p90, p99, bare.
var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// Write draws r in format (SVG or PNG) to w.
func Write(w io.Writer, r *bench.Report, format string) error {
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch format {
	case SVG:
		c = vgsvg.New(width, height)
	case PNG:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(144))}
	default:
		return fmt.Errorf("chart: %q: want %s or %s: %w", format, SVG, PNG, ErrFormat)
	}
	lat, err := latencyPlot(r)
	if err != nil {
		return err
	}
	thr, err := throughputPlot(r)
	if err != nil {
		return err
	}
	dc := draw.New(c)
	plots := [][]*plot.Plot{{lat, thr}}
	canvases := plot.Align(plots, draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3,
		PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}, dc)
	lat.Draw(canvases[0][0])
	thr.Draw(canvases[0][1])
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("chart: writing %s: %w", format, err)
	}
	return nil
}

// series is one set of bars of a grouped bar chart.
type series struct {
	name   string
	values []float64
}

// latencyPlot draws p50, p90, p99 (and bare p50) per operation, in ms on
// a log scale.
func latencyPlot(r *bench.Report) (*plot.Plot, error) {
	var names []string
	s := []series{{name: "p50"}, {name: "p90"}, {name: "p99"}}
	hasBare := false
	for _, op := range r.Operations {
		names = append(names, op.Name)
		s[0].values = append(s[0].values, op.Latency.P50Ms)
		s[1].values = append(s[1].values, op.Latency.P90Ms)
		s[2].values = append(s[2].values, op.Latency.P99Ms)
		hasBare = hasBare || op.Bare != nil
	}
	if hasBare {
		bare := series{name: "bare p50"}
		for _, op := range r.Operations {
			v := 0.0
			if op.Bare != nil {
				v = op.Bare.P50Ms
			}
			bare.values = append(bare.values, v)
		}
		s = append(s, bare)
	}
	p := plot.New()
	p.Title.Text = "latency per operation"
	p.Y.Label.Text = "ms (log scale)"
	p.X.Tick.Label.Font.Size = vg.Points(8)
	return p, groupedBars(p, names, s, true)
}

// throughputPlot draws execs/s per sweep level (and the bare fork/exec
// throughput), on a log scale.
func throughputPlot(r *bench.Report) (*plot.Plot, error) {
	var names []string
	s := []series{{name: "execs/s"}}
	hasBare := false
	for _, l := range r.Sweep {
		names = append(names, fmt.Sprintf("%d", l.Concurrency))
		s[0].values = append(s[0].values, l.ExecsPerSec)
		hasBare = hasBare || l.Bare != nil
	}
	if hasBare {
		bare := series{name: "bare fork/exec/s"}
		for _, l := range r.Sweep {
			v := 0.0
			if l.Bare != nil {
				v = l.Bare.ExecsPerSec
			}
			bare.values = append(bare.values, v)
		}
		s = append(s, bare)
	}
	p := plot.New()
	p.Title.Text = "throughput per concurrency level"
	p.X.Label.Text = "sandboxes at once"
	p.Y.Label.Text = "execs/s (log scale)"
	return p, groupedBars(p, names, s, true)
}

// groupedBars adds one bar chart per series to p, grouped by category
// names. With logY the value axis is logarithmic; bars start at its
// lower end.
func groupedBars(p *plot.Plot, names []string, s []series, logY bool) error {
	if len(names) == 0 {
		p.Title.Text += " (no data)"
		p.HideAxes()
		return nil
	}
	barWidth := vg.Points(math.Min(18, 180/float64(len(names)*len(s))))
	lo, hi := math.Inf(1), 0.0
	for i, ser := range s {
		bars, err := plotter.NewBarChart(plotter.Values(ser.values), barWidth)
		if err != nil {
			return fmt.Errorf("chart: %s: %w", ser.name, err)
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = barWidth * vg.Length(float64(i)-float64(len(s)-1)/2)
		p.Add(bars)
		p.Legend.Add(ser.name, bars)
		for _, v := range ser.values {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	p.NominalX(names...)
	// Room for the outer bars of the first and last groups.
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	if logY && hi > 0 {
		p.Y.Scale = floorLog{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		// A decade of headroom for the legend.
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(hi))+1)
	}
	return nil
}

// floorLog is a log scale on which values at or below the axis minimum
// (the zero a bar starts from) sit at the minimum.
type floorLog struct{}

// Normalize implements plot.Normalizer.
func (floorLog) Normalize(lo, hi, x float64) float64 {
	return plot.LogScale{}.Normalize(lo, hi, math.Max(x, lo))
}
