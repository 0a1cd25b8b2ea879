package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Report is the result of one client run. Its JSON form is what
// bench/compare reads.
type Report struct {
	URL   string   `json:"url"`
	URLs  []string `json:"urls,omitempty"` // all of them, when the streams were spread over several
	Proto string   `json:"proto"`
	// H2PerConn is -h2-streams-per-conn: streams per HTTP/2 connection group (0: packed).
	H2PerConn int `json:"h2_streams_per_conn,omitempty"`
	Streams   int `json:"streams"` // requested
	PID       int `json:"pid,omitempty"`

	Connected      int     `json:"connected"`
	ConnectedBy    []int   `json:"connected_by_url,omitempty"` // with several URLs: open streams per URL
	Failed         int     `json:"failed"`                     // never opened
	EndedEarly     int     `json:"ended_early"`                // opened, then ended before the run did
	ConnectSeconds float64 `json:"connect_seconds"`
	WindowSeconds  float64 `json:"window_seconds"`
	Interrupted    bool    `json:"interrupted,omitempty"`

	// Delivered counts events sent inside the window that arrived. Expected
	// is, per stream, the span of sequence numbers sent inside the window;
	// it is complete for streams whose tail is confirmed (an event sent after
	// the window arrived). ExpectedByRate is rate x window for every open
	// stream, from the rate the upstream announces.
	Delivered        uint64  `json:"delivered"`
	Expected         uint64  `json:"expected"`
	ExpectedByRate   float64 `json:"expected_by_rate"`
	ReceivedInWindow uint64  `json:"received_in_window"` // events that arrived inside the window
	Gaps             uint64  `json:"gaps"`               // sequence numbers skipped, whole run
	Dups             uint64  `json:"dups"`               // sequence numbers repeated or reordered, whole run
	BadEvents        uint64  `json:"bad_events"`         // events not from sseload upstream
	SilentStreams    int     `json:"silent_streams"`     // open streams with no event in the window although events were due
	UnconfirmedTails int     `json:"unconfirmed_tails"`  // streams with no event sent after the window by the end of the grace period
	Comments         uint64  `json:"comments"`           // comment lines (heartbeats), whole run
	NegativeLatency  uint64  `json:"negative_latency,omitempty"`

	// UpstreamStreams is how many streams the sseload upstream was serving
	// at the end of the window (with -upstream-health): as many as Connected
	// through an unshared proxy, 1 through a proxy that shares one upstream
	// stream among all clients.
	UpstreamStreams *int `json:"upstream_streams,omitempty"`

	Latency LatencySummary `json:"latency"`
	// OriginLatency is receive time minus origin time over the same events:
	// the time since the upstream made the broadcast tick an event belongs
	// to, so it includes the upstream's own fan-out of that tick to every
	// stream, which Latency leaves out. Events without an origin stamp
	// (per-stream mode) count their send time. Absent when no event counted.
	OriginLatency *LatencySummary `json:"origin_latency,omitempty"`
	// Process is what the -pid process spent; with several, their sum
	// (CPU per event over all events, memory per stream over all streams),
	// and Processes each one's.
	Process   *ProcReport   `json:"process,omitempty"`
	Processes []*ProcReport `json:"processes,omitempty"`
	// Redis is what the -redis server spent and did inside the window.
	Redis    *RedisReport `json:"redis,omitempty"`
	Errors   []ErrorCount `json:"errors,omitempty"`
	Warnings []string     `json:"warnings,omitempty"`
}

// LatencySummary is the distribution of a latency (receive time minus send
// time, or minus origin time) over the events sent inside the window, in
// microseconds.
type LatencySummary struct {
	Count  uint64  `json:"count"`
	P50us  float64 `json:"p50_us"`
	P90us  float64 `json:"p90_us"`
	P99us  float64 `json:"p99_us"`
	P999us float64 `json:"p999_us"`
	MaxUs  float64 `json:"max_us"`
	MeanUs float64 `json:"mean_us"`
}

// ProcReport is what the sampled process spent: CPU inside the window per
// event received inside it, and memory growth from before the first stream
// opened to the end of the window.
type ProcReport struct {
	PID               int     `json:"pid"`                 // 0 for a sum over several processes
	URLIndex          *int    `json:"url_index,omitempty"` // the -url (from 0) whose streams' events and count CPU and memory are divided by; absent: all
	ConnectCPUSeconds float64 `json:"connect_cpu_seconds"` // from before opening to the window start
	CPUSeconds        float64 `json:"cpu_seconds"`         // inside the window
	Events            uint64  `json:"events"`              // received inside the window, of the streams it serves
	CPUPer1kEvents    float64 `json:"cpu_seconds_per_1k_events"`
	CPUPercent        float64 `json:"cpu_percent"` // of one core, inside the window
	RSSBaseKiB        uint64  `json:"rss_base_kib"`
	RSSEndKiB         uint64  `json:"rss_end_kib"`
	PSSBaseKiB        uint64  `json:"pss_base_kib"`
	PSSEndKiB         uint64  `json:"pss_end_kib"`
	PSSPerStreamKiB   float64 `json:"pss_per_stream_kib"`
	RSSPerStreamKiB   float64 `json:"rss_per_stream_kib"`
}

// ErrorCount is one kind of stream failure, with one full message.
type ErrorCount struct {
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// summarize folds the per-stream tallies and the histogram into rep.
func (c *client) summarize(rep *Report, stats []streamStat) {
	errs := map[string]*ErrorCount{}
	if len(c.cfg.urls) > 1 {
		rep.ConnectedBy = make([]int, len(c.cfg.urls))
	}
	for i := range stats {
		st := &stats[i]
		if st.failKind != "" {
			e := errs[st.failKind]
			if e == nil {
				e = &ErrorCount{Kind: st.failKind, Example: st.failMsg}
				errs[st.failKind] = e
			}
			e.Count++
		}
		if !st.connected {
			if st.failKind == "" {
				st.fail("not opened", "the run ended before this stream was opened")
				errs["not opened"] = &ErrorCount{Kind: "not opened", Example: st.failMsg}
			}
			rep.Failed++
			continue
		}
		rep.Connected++
		if rep.ConnectedBy != nil {
			rep.ConnectedBy[st.url]++
		}
		if st.endedEarly {
			rep.EndedEarly++
		}
		rep.Delivered += st.inWin
		if st.sawWindowEvents {
			rep.Expected += st.lastWin - st.firstWin + 1
		}
		if st.rate > 0 {
			rep.ExpectedByRate += st.rate * rep.WindowSeconds
			if !st.sawWindowEvents && st.rate*rep.WindowSeconds >= 2 {
				rep.SilentStreams++
			}
		}
		rep.Gaps += st.gaps
		rep.Dups += st.dups
		rep.BadEvents += st.bad
		rep.Comments += st.comments
	}
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		rep.Errors = append(rep.Errors, *errs[k])
	}
	rep.NegativeLatency = c.negative.Load()
	rep.Latency = summarizeLatency(&c.hist)
	if c.fromOrigin.Count() > 0 {
		o := summarizeLatency(&c.fromOrigin)
		rep.OriginLatency = &o
	}
}

// summarizeLatency reads the percentiles of h, a histogram of nanoseconds.
func summarizeLatency(h *Histogram) LatencySummary {
	us := func(ns float64) float64 { return ns / 1e3 }
	return LatencySummary{
		Count:  h.Count(),
		P50us:  us(h.Quantile(0.50)),
		P90us:  us(h.Quantile(0.90)),
		P99us:  us(h.Quantile(0.99)),
		P999us: us(h.Quantile(0.999)),
		MaxUs:  us(float64(h.Max())),
		MeanUs: us(h.Mean()),
	}
}

// newProcReport derives CPU and memory costs from three samples.
func newProcReport(pid int, base, start, end ProcSample, events uint64, streams int) *ProcReport {
	p := &ProcReport{
		PID:               pid,
		ConnectCPUSeconds: start.CPUSeconds() - base.CPUSeconds(),
		CPUSeconds:        end.CPUSeconds() - start.CPUSeconds(),
		Events:            events,
		RSSBaseKiB:        base.RSSKiB,
		RSSEndKiB:         end.RSSKiB,
		PSSBaseKiB:        base.PSSKiB,
		PSSEndKiB:         end.PSSKiB,
	}
	if events > 0 {
		p.CPUPer1kEvents = p.CPUSeconds / float64(events) * 1000
	}
	if d := end.At.Sub(start.At).Seconds(); d > 0 {
		p.CPUPercent = p.CPUSeconds / d * 100
	}
	if streams > 0 {
		p.PSSPerStreamKiB = (float64(end.PSSKiB) - float64(base.PSSKiB)) / float64(streams)
		p.RSSPerStreamKiB = (float64(end.RSSKiB) - float64(base.RSSKiB)) / float64(streams)
	}
	return p
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *Report) writeText(w io.Writer) {
	fmt.Fprintf(w, "sseload client: %s over %s\n", r.URL, r.Proto)
	fmt.Fprintf(w, "  streams:   %d/%d open in %.1fs, %d failed, %d ended early\n",
		r.Connected, r.Streams, r.ConnectSeconds, r.Failed, r.EndedEarly)
	fmt.Fprintf(w, "  window:    %.1fs%s\n", r.WindowSeconds, map[bool]string{true: " (interrupted)"}[r.Interrupted])
	fmt.Fprintf(w, "  events:    %d delivered of %d expected (%.0f by rate), %d received in window\n",
		r.Delivered, r.Expected, r.ExpectedByRate, r.ReceivedInWindow)
	fmt.Fprintf(w, "  integrity: %d gaps, %d dups, %d bad events, %d silent streams, %d unconfirmed tails\n",
		r.Gaps, r.Dups, r.BadEvents, r.SilentStreams, r.UnconfirmedTails)
	fmt.Fprintf(w, "  comments:  %d (heartbeats)\n", r.Comments)
	if r.UpstreamStreams != nil {
		perUp := "n/a"
		if *r.UpstreamStreams > 0 {
			perUp = fmt.Sprintf("%.1f", float64(r.Connected)/float64(*r.UpstreamStreams))
		}
		fmt.Fprintf(w, "  upstream:  %d streams at the window's end (%s client streams per upstream stream)\n", *r.UpstreamStreams, perUp)
	}
	l := r.Latency
	fmt.Fprintf(w, "  latency:   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s  (n=%d)\n",
		fmtUs(l.P50us), fmtUs(l.P90us), fmtUs(l.P99us), fmtUs(l.P999us), fmtUs(l.MaxUs), fmtUs(l.MeanUs), l.Count)
	if o := r.OriginLatency; o != nil {
		fmt.Fprintf(w, "  origin:    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s  (from the broadcast tick; from send where an event has none)\n",
			fmtUs(o.P50us), fmtUs(o.P90us), fmtUs(o.P99us), fmtUs(o.P999us), fmtUs(o.MaxUs), fmtUs(o.MeanUs))
	}
	if p := r.Process; p != nil {
		fmt.Fprintf(w, "  process %d: %.2f CPU s in window (%.1f%% of a core), %.4f CPU s per 1000 events; %.2f CPU s while opening\n",
			p.PID, p.CPUSeconds, p.CPUPercent, p.CPUPer1kEvents, p.ConnectCPUSeconds)
		fmt.Fprintf(w, "  memory:    PSS %d -> %d KiB (%.1f KiB/stream), RSS %d -> %d KiB (%.1f KiB/stream)\n",
			p.PSSBaseKiB, p.PSSEndKiB, p.PSSPerStreamKiB, p.RSSBaseKiB, p.RSSEndKiB, p.RSSPerStreamKiB)
	}
	for _, p := range r.Processes {
		served := "all streams"
		if p.URLIndex != nil {
			served = fmt.Sprintf("-url #%d", *p.URLIndex+1)
		}
		fmt.Fprintf(w, "    pid %d (%s): %.2f CPU s (%.1f%% of a core), %.4f CPU s per 1000 events; PSS %d -> %d KiB\n",
			p.PID, served, p.CPUSeconds, p.CPUPercent, p.CPUPer1kEvents, p.PSSBaseKiB, p.PSSEndKiB)
	}
	if rd := r.Redis; rd != nil {
		fmt.Fprintf(w, "  redis %d:  %.2f CPU s in window (%.1f%% of a core), %d appends, %d commands (%.1f per append, %.0f/s)\n",
			rd.PID, rd.CPUSeconds, rd.CPUPercent, rd.Appends, rd.Commands, rd.CommandsPerAppend, rd.CommandsPerSecond)
		names := slices.Sorted(maps.Keys(rd.ByCommand))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %d", n, rd.ByCommand[n])
		}
		fmt.Fprintf(w, "    commands: %s\n", strings.Join(parts, ", "))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error:     %d x %s (e.g. %s)\n", e.Count, e.Kind, e.Example)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "  warning:   %s\n", s)
	}
	if r.NegativeLatency > 0 {
		fmt.Fprintf(w, "  warning:   %d events arrived before their send time (clock moved?)\n", r.NegativeLatency)
	}
}

// fmtUs formats microseconds for humans.
func fmtUs(us float64) string {
	switch {
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return strings.TrimSuffix(fmt.Sprintf("%.0fµs", us), ".")
	}
}
