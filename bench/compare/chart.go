package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// chartRow is one subject's latency percentiles, in microseconds.
type chartRow struct {
	label              string
	p50, p90, p99, max float64
}

// chart draws the latency percentiles of every event-carrying run as an SVG
// strip chart on a logarithmic axis: one row per scenario and subject, a line
// from p50 to max, and a marker per percentile.
func (res *results) chart() string {
	var rows []chartRow
	for _, sc := range res.plan {
		if sc.rate == 0 {
			continue
		}
		for _, key := range sc.subjects {
			r := res.run(sc.key, key)
			if r == nil || r.Err != "" || r.Report.Latency.Count == 0 {
				continue
			}
			l := r.Report.Latency
			rows = append(rows, chartRow{
				label: fmt.Sprintf("%s · %s", sc.key, label(key)),
				p50:   l.P50, p90: l.P90, p99: l.P99, max: l.Max,
			})
		}
	}
	return drawChart("Per-event latency (receive − send); medians over clean rounds; log scale", rows)
}

// fmtTick formats a power of ten of microseconds as an axis label.
func fmtTick(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%g s", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%g ms", us/1e3)
	default:
		return fmt.Sprintf("%g µs", us)
	}
}

func drawChart(title string, rows []chartRow) string {
	const (
		left, right, top, rowH, width = 300.0, 30.0, 60.0, 28.0, 1000.0
	)
	height := top + rowH*float64(len(rows)) + 70
	lo, hi := 1e9, 1.0
	for _, r := range rows {
		lo = math.Min(lo, math.Max(r.p50, 1))
		hi = math.Max(hi, r.max)
	}
	if len(rows) == 0 {
		lo, hi = 10, 1000
	}
	dLo, dHi := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if dHi <= dLo {
		dHi = dLo + 1
	}
	plotW := width - left - right
	x := func(us float64) float64 {
		v := math.Log10(math.Max(us, math.Pow(10, dLo)))
		return left + (v-dLo)/(dHi-dLo)*plotW
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	plotBottom := top + rowH*float64(len(rows))
	for i := range rows {
		if i%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%.0f" height="%.0f" fill="#f4f4f4"/>`+"\n", top+rowH*float64(i), width, rowH)
		}
	}
	for d := dLo; d <= dHi; d++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, d)
			if d == dHi && m > 1 {
				break
			}
			xx := x(v)
			stroke := "#e4e4e4"
			if m == 1 {
				stroke = "#bbb"
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", xx, plotBottom+18, fmtTick(v))
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s"/>`+"\n", xx, top-10, xx, plotBottom, stroke)
		}
	}
	type marker struct {
		name, color string
		shape       func(x, y float64) string
	}
	circle := func(c string) func(x, y float64) string {
		return func(x, y float64) string {
			return fmt.Sprintf(`<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/>`, x, y, c)
		}
	}
	square := func(c string) func(x, y float64) string {
		return func(x, y float64) string {
			return fmt.Sprintf(`<rect x="%.1f" y="%.1f" width="9" height="9" fill="%s"/>`, x-4.5, y-4.5, c)
		}
	}
	diamond := func(c string) func(x, y float64) string {
		return func(x, y float64) string {
			return fmt.Sprintf(`<path d="M%.1f %.1f l6 6 l-6 6 l-6 -6 z" fill="%s"/>`, x, y-6, c)
		}
	}
	cross := func(c string) func(x, y float64) string {
		return func(x, y float64) string {
			return fmt.Sprintf(`<path d="M%.1f %.1f l10 10 m0 -10 l-10 10" stroke="%s" stroke-width="2"/>`, x-5, y-5, c)
		}
	}
	markers := []marker{
		{"p50", "#1f77b4", circle("#1f77b4")},
		{"p90", "#2ca02c", square("#2ca02c")},
		{"p99", "#d62728", diamond("#d62728")},
		{"max", "#555", cross("#555")},
	}
	for i, r := range rows {
		y := top + rowH*(float64(i)+0.5)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-10, y+4, html.EscapeString(r.label))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-width="2"/>`+"\n", x(r.p50), y, x(r.max), y)
		vals := []float64{r.p50, r.p90, r.p99, r.max}
		for j, m := range markers {
			fmt.Fprintf(&b, `<g><title>%s %s</title>%s</g>`+"\n", m.name, fmtUs(vals[j]), m.shape(x(vals[j]), y))
		}
	}
	ly := plotBottom + 45
	for j, m := range markers {
		lx := left + float64(j)*90
		fmt.Fprintf(&b, "%s\n", m.shape(lx, ly))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+12, ly+4, m.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
