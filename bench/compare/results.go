package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// clientReport is the part of `sseload client -json` the comparison reads.
type clientReport struct {
	Streams          int         `json:"streams"`
	Connected        int         `json:"connected"`
	Failed           int         `json:"failed"`
	EndedEarly       int         `json:"ended_early"`
	WindowSeconds    float64     `json:"window_seconds"`
	Delivered        uint64      `json:"delivered"`
	Expected         uint64      `json:"expected"`
	ExpectedByRate   float64     `json:"expected_by_rate"`
	ReceivedInWindow uint64      `json:"received_in_window"`
	Gaps             uint64      `json:"gaps"`
	Dups             uint64      `json:"dups"`
	BadEvents        uint64      `json:"bad_events"`
	SilentStreams    int         `json:"silent_streams"`
	UnconfirmedTails int         `json:"unconfirmed_tails"`
	Comments         uint64      `json:"comments"`
	UpstreamStreams  *int        `json:"upstream_streams"`
	Latency          latency     `json:"latency"`
	OriginLatency    *latency    `json:"origin_latency"` // from the broadcast tick, not the send; absent from older reports
	Process          *procReport `json:"process"`
	// With several -url and -pid (cluster mode): streams per URL, each
	// process's report and the redis-server's.
	ConnectedBy []int         `json:"connected_by_url"`
	Processes   []*procReport `json:"processes"`
	Redis       *redisReport  `json:"redis"`
	Errors      []struct {
		Kind  string `json:"kind"`
		Count int    `json:"count"`
	} `json:"errors"`
	Warnings []string `json:"warnings"`
}

// latency is the client's latency summary, in microseconds.
type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	Max   float64 `json:"max_us"`
}

// procReport is what the client sampled of the process under test.
type procReport struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPer1k        float64 `json:"cpu_seconds_per_1k_events"`
	Events          uint64  `json:"events"`
	CPUPercent      float64 `json:"cpu_percent"`
	PSSPerStreamKiB float64 `json:"pss_per_stream_kib"`
	RSSPerStreamKiB float64 `json:"rss_per_stream_kib"`
	PSSBaseKiB      uint64  `json:"pss_base_kib"`
	PSSEndKiB       uint64  `json:"pss_end_kib"`
}

// redisReport is what the client sampled of the redis-server (sseload's RedisReport).
type redisReport struct {
	CPUSeconds        float64           `json:"cpu_seconds"`
	CPUPercent        float64           `json:"cpu_percent"`
	Appends           uint64            `json:"appends"`
	Commands          uint64            `json:"commands"`
	ByCommand         map[string]uint64 `json:"by_command"`
	CommandsPerSecond float64           `json:"commands_per_second"`
}

// runResult is one scenario measured against one subject.
type runResult struct {
	Scenario string          `json:"scenario"`
	Subject  string          `json:"subject"`
	Proto    string          `json:"proto"`
	Round    int             `json:"round"`
	Streams  int             `json:"streams"`
	Raw      json.RawMessage `json:"report,omitempty"`
	Err      string          `json:"error,omitempty"`
	Skipped  string          `json:"skipped,omitempty"` // why it was not measured (e.g. not enough open files)
	Report   clientReport    `json:"-"`

	// Set on results combined from several rounds.
	rounds      int // measured
	used        int // combined (the clean ones, if any)
	roundIssues []string
	p99Range    [2]float64
	usedRuns    []*runResult // the rounds combined
}

// problems lists what makes this run's numbers untrustworthy.
func (r *runResult) problems() []string {
	if r.rounds > 0 {
		return r.roundIssues
	}
	if r.Skipped != "" {
		return nil
	}
	if r.Err != "" {
		return []string{r.Err}
	}
	c := &r.Report
	var p []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			p = append(p, fmt.Sprintf(format, args...))
		}
	}
	add(c.Failed > 0, "%d streams failed to open", c.Failed)
	add(c.EndedEarly > 0, "%d streams ended early", c.EndedEarly)
	add(c.Gaps > 0, "%d events missing (sequence gaps)", c.Gaps)
	add(c.Dups > 0, "%d duplicated/reordered events", c.Dups)
	add(c.BadEvents > 0, "%d malformed events", c.BadEvents)
	add(c.SilentStreams > 0, "%d silent streams", c.SilentStreams)
	add(c.UnconfirmedTails > 0, "%d streams got no event sent after the window within the grace period (events still in flight)", c.UnconfirmedTails)
	add(c.Delivered < c.Expected, "%d of %d expected events not delivered", c.Expected-c.Delivered, c.Expected)
	add(c.ExpectedByRate > 0 && float64(c.Delivered) < 0.97*c.ExpectedByRate,
		"delivered %d, well under %.0f due by rate", c.Delivered, c.ExpectedByRate)
	add(c.Process == nil, "no process sample")
	add(subjectKind(r.Subject) == "cluster" && len(c.Processes) != clusterInstances, "%d instances sampled, not %d", len(c.Processes), clusterInstances)
	add(subjectKind(r.Subject) == "cluster" && c.Redis == nil, "no redis sample")
	add(r.Subject == "cluster_redis" && c.UpstreamStreams != nil && *c.UpstreamStreams != 1,
		"not one upstream stream for the cluster: the upstream served %d", derefInt(c.UpstreamStreams))
	add(r.Subject == "cluster_local" && c.UpstreamStreams != nil && *c.UpstreamStreams != clusterInstances,
		"not one upstream stream per instance: the upstream served %d", derefInt(c.UpstreamStreams))
	add(r.Subject == "sse_proxy_share" && c.UpstreamStreams != nil && *c.UpstreamStreams > 1,
		"not shared: the upstream served %d streams", derefInt(c.UpstreamStreams))
	for _, e := range c.Errors {
		p = append(p, fmt.Sprintf("%d× %s", e.Count, e.Kind))
	}
	return p
}

func (r *runResult) oneLine() string {
	if r.Skipped != "" {
		return "SKIPPED: " + r.Skipped
	}
	if r.Err != "" {
		return "ERROR " + r.Err
	}
	c := &r.Report
	s := fmt.Sprintf("%d/%d open, %d/%d events, p50 %s p99 %s", c.Connected, c.Streams, c.Delivered, c.Expected,
		fmtUs(c.Latency.P50), fmtUs(c.Latency.P99))
	if c.Process != nil {
		s += fmt.Sprintf(", CPU %.4f s/1k ev, PSS %+.1f KiB/stream", c.Process.CPUPer1k, c.Process.PSSPerStreamKiB)
	}
	if p := r.problems(); len(p) > 0 {
		s += " [" + strings.Join(p, "; ") + "]"
	}
	return s
}

func derefInt(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// budget is one pass/fail check.
type budget struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Limit    string `json:"limit"`
	Result   string `json:"result"` // PASS, FAIL, INVALID (a run had problems) or SKIP
	// Goal marks a target not yet met (issue #13's fan-out goals): its FAIL
	// or INVALID does not change the exit status.
	Goal bool `json:"goal,omitempty"`
}

// results is everything one comparison produced.
type results struct {
	Quick        bool      `json:"quick"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Env          string    `json:"environment"`
	Pinning      string    `json:"pinning"`
	BusyAtStart  float64   `json:"machine_busy_percent_at_start"`
	BusyAtEnd    float64   `json:"machine_busy_percent_at_end"`
	CaddyVersion string    `json:"caddy_version"`
	NginxVersion string    `json:"nginx_version,omitempty"`
	NginxNote    string    `json:"nginx_note,omitempty"`
	NginxH3Note  string    `json:"nginx_h3_note,omitempty"` // why nginx is not measured over HTTP/3
	QUICNote     string    `json:"quic_note,omitempty"`     // quic-go's UDP buffer warning in Caddy's log or the client's, if any
	// UpstreamRestarts counts the times the upstream was found stopped
	// (from outside) between measurements and started again.
	UpstreamRestarts int          `json:"upstream_restarts,omitempty"`
	SSEAvailable     bool         `json:"sse_proxy_available"`
	SSENote          string       `json:"sse_proxy_note,omitempty"`
	Only             []string     `json:"only,omitempty"`    // scenarios run with -only
	Cluster          *clusterInfo `json:"cluster,omitempty"` // -cluster
	Runs             []runResult  `json:"runs"`
	Budgets          []budget     `json:"budgets"`
	plan             []scenario
	anyFail          bool
}

// run returns the result of scenario sc for subject, its rounds combined,
// or nil if it was not measured. Rounds with problems (errors, lost events,
// a load generator that could not keep up) are left out as long as at least
// one clean round remains; the combined result has problems only if none
// does. Combined: latency percentiles are the median over the rounds used
// (max the maximum), CPU per event is their total CPU over their total
// events, memory per stream the median, counts are sums.
func (res *results) run(sc, subject string) *runResult {
	var all, clean []*runResult
	for i := range res.Runs {
		r := &res.Runs[i]
		if r.Scenario == sc && r.Subject == subject {
			all = append(all, r)
			if len(r.problems()) == 0 {
				clean = append(clean, r)
			}
		}
	}
	if len(all) == 0 {
		return nil
	}
	all = slices.DeleteFunc(all, func(r *runResult) bool { return r.Skipped != "" })
	clean = slices.DeleteFunc(clean, func(r *runResult) bool { return r.Skipped != "" })
	if len(all) == 0 {
		for i := range res.Runs {
			if r := &res.Runs[i]; r.Scenario == sc && r.Subject == subject {
				return &runResult{Scenario: sc, Subject: subject, Proto: r.Proto, Streams: r.Streams, Skipped: r.Skipped}
			}
		}
	}
	first := all[0]
	out := &runResult{Scenario: sc, Subject: subject, Proto: first.Proto, Streams: first.Streams, rounds: len(all)}
	use := clean
	if len(clean) == 0 {
		use = all
		for _, r := range all {
			for _, p := range r.problems() {
				out.roundIssues = append(out.roundIssues, fmt.Sprintf("round %d: %s", r.Round, p))
			}
		}
	}
	var p50, p90, p99, pss, rss, pct []float64
	var cpu float64
	var events uint64
	o := &out.Report
	o.Streams, o.Connected = first.Streams, first.Streams
	for _, r := range use {
		if r.Err != "" {
			out.Err = r.Err
			continue
		}
		out.used++
		out.usedRuns = append(out.usedRuns, r)
		c := &r.Report
		o.Connected = min(o.Connected, c.Connected)
		o.Delivered += c.Delivered
		o.Expected += c.Expected
		o.Comments += c.Comments
		if c.UpstreamStreams != nil && (o.UpstreamStreams == nil || *c.UpstreamStreams > *o.UpstreamStreams) {
			o.UpstreamStreams = c.UpstreamStreams
		}
		o.Latency.Count += c.Latency.Count
		o.Latency.Max = max(o.Latency.Max, c.Latency.Max)
		p50, p90, p99 = append(p50, c.Latency.P50), append(p90, c.Latency.P90), append(p99, c.Latency.P99)
		if p := c.Process; p != nil {
			cpu += p.CPUSeconds
			events += c.ReceivedInWindow
			pss, rss, pct = append(pss, p.PSSPerStreamKiB), append(rss, p.RSSPerStreamKiB), append(pct, p.CPUPercent)
			if o.Process == nil {
				o.Process = &procReport{PSSBaseKiB: p.PSSBaseKiB, PSSEndKiB: p.PSSEndKiB}
			}
		}
	}
	if out.used == 0 {
		return out
	}
	out.Err = "" // some rounds measured; their issues stay listed
	o.Latency.P50, o.Latency.P90, o.Latency.P99 = median(p50), median(p90), median(p99)
	out.p99Range = [2]float64{slices.Min(p99), slices.Max(p99)}
	if p := o.Process; p != nil {
		p.CPUSeconds = cpu
		if events > 0 {
			p.CPUPer1k = cpu / float64(events) * 1000
		}
		p.PSSPerStreamKiB, p.RSSPerStreamKiB, p.CPUPercent = median(pss), median(rss), median(pct)
	}
	return out
}

// median of a non-empty slice (the mean of the middle two for even lengths).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// nginxIdleKiB is nginx's PSS per idle stream measured on this machine
// before nginx was part of the comparison; the shared-stream memory budget
// uses it when nginx is not measured in the run.
const nginxIdleKiB = 14.0

// check appends one verdict. skip, if set, is why it cannot be judged.
func (res *results) check(name, skip string, runs []*runResult, measure func() (measured, limit float64), unit func(float64) string) {
	b := budget{Name: name}
	if skip == "" && len(res.Only) > 0 && !slices.ContainsFunc(runs, func(r *runResult) bool { return r != nil }) {
		skip = "not run (-only)"
	}
	switch {
	case !res.SSEAvailable:
		b.Result = "SKIP"
	case skip != "":
		b.Result, b.Measured = "SKIP", skip
	default:
		for _, r := range runs {
			if r == nil || len(r.problems()) > 0 || r.Report.Process == nil {
				b.Result = "INVALID"
			}
		}
	}
	if b.Result == "" {
		m, l := measure()
		b.Measured, b.Limit = unit(m), unit(l)
		b.Result = "PASS"
		if m > l {
			b.Result = "FAIL"
		}
	}
	if b.Result == "FAIL" || b.Result == "INVALID" {
		res.anyFail = true
	}
	res.Budgets = append(res.Budgets, b)
}

// evaluate checks the budgets.
func (res *results) evaluate(plan []scenario) {
	res.plan = plan
	check := res.check
	cpuUnit := func(v float64) string { return fmt.Sprintf("%.4f CPU s/1k events", v) }
	planned := func(key string) *scenario {
		for i := range plan {
			if plan[i].key == key {
				return &plan[i]
			}
		}
		return nil
	}

	d, rp, sse := res.run("latency", "direct"), res.run("latency", "reverse_proxy"), res.run("latency", "sse_proxy")
	check("added p99 latency ≤ reverse_proxy's + 0.1 ms", "", []*runResult{d, rp, sse}, func() (float64, float64) {
		return sse.Report.Latency.P99 - d.Report.Latency.P99, rp.Report.Latency.P99 - d.Report.Latency.P99 + 100
	}, fmtUs)

	for _, sc := range []string{"broadcast-h1", "broadcast-h2"} {
		rp, sse := res.run(sc, "reverse_proxy"), res.run(sc, "sse_proxy")
		check("CPU per delivered event ≤ 1.1× reverse_proxy ("+protoName(sc)+")", "", []*runResult{rp, sse}, func() (float64, float64) {
			return sse.Report.Process.CPUPer1k, 1.1 * rp.Report.Process.CPUPer1k
		}, cpuUnit)
	}

	rp, sse = res.run("idle", "reverse_proxy"), res.run("idle", "sse_proxy")
	check("memory per idle stream ≤ 1.1× reverse_proxy", "", []*runResult{rp, sse}, func() (float64, float64) {
		return sse.Report.Process.PSSPerStreamKiB, 1.1 * rp.Report.Process.PSSPerStreamKiB
	}, fmtKiB)

	// Shared streams against nginx, per client.
	sh, ng := res.run("idle", "sse_proxy_share"), res.run("idle", "nginx")
	if ng != nil {
		check("share: memory per idle stream ≤ nginx's", "", []*runResult{sh, ng}, func() (float64, float64) {
			return sh.Report.Process.PSSPerStreamKiB, ng.Report.Process.PSSPerStreamKiB
		}, fmtKiB)
	} else {
		check(fmt.Sprintf("share: memory per idle stream ≤ nginx's (%.0f KiB measured earlier; nginx not in this run)", nginxIdleKiB), "",
			[]*runResult{sh}, func() (float64, float64) { return sh.Report.Process.PSSPerStreamKiB, nginxIdleKiB }, fmtKiB)
	}
	sh, ng = res.run("broadcast-h1", "sse_proxy_share"), res.run("broadcast-h1", "nginx")
	skip := ""
	if ng == nil {
		skip = "nginx not measured"
	}
	check("share: CPU per delivered event ≤ nginx's (HTTP/1.1)", skip, []*runResult{sh, ng}, func() (float64, float64) {
		return sh.Report.Process.CPUPer1k, ng.Report.Process.CPUPer1k
	}, cpuUnit)

	if sc := planned("shared-h2-many"); sc != nil {
		sh := res.run(sc.key, "sse_proxy_share")
		check(fmt.Sprintf("share: %d streams over HTTP/2 open, from one upstream stream, no event lost (streams not served)", sc.n), "",
			[]*runResult{sh}, func() (float64, float64) {
				return float64(sh.Streams - sh.Report.Connected), 0
			}, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	}
	if sc := planned("idle-cpu-h2"); sc != nil {
		sse := res.run(sc.key, "sse_proxy")
		name := fmt.Sprintf("idle CPU, %d idle HTTP/2 streams, heartbeat 15 s, %s window < 5%% of a core", sc.n, sc.duration)
		check(name, "", []*runResult{sse}, func() (float64, float64) {
			return sse.Report.Process.CPUPercent, 5
		}, func(v float64) string { return fmt.Sprintf("%.2f%% of a core", v) })
	}
	res.fanoutGoals(plan)
}

func protoName(scenario string) string {
	if strings.HasSuffix(scenario, "h2") {
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// write stores latest.md, latest.json and latency.svg in dir.
func (res *results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latency.svg"), []byte(res.chart()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.md"), []byte(res.markdown()), 0o644)
}

// head starts a report: its title with the date, then the run's mode,
// machine, pinning and other load; units names what -quick has fewer of.
func (res *results) head(b *strings.Builder, title, units string) {
	mode := "full"
	if res.Quick {
		mode = "quick (-quick: fewer " + units + ", shorter windows; for smoke checks, not for decisions)"
	}
	fmt.Fprintf(b, "# %s — %s\n\n", title, res.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "- Mode: %s; took %s\n", mode, res.Finished.Sub(res.Started).Round(time.Second))
	fmt.Fprintf(b, "- Machine: %s\n", res.Env)
	fmt.Fprintf(b, "- CPU pinning: %s\n", res.Pinning)
	fmt.Fprintf(b, "- Other load: all CPUs %.0f%% busy just before measuring, %.0f%% just after", res.BusyAtStart, res.BusyAtEnd)
	if max(res.BusyAtStart, res.BusyAtEnd) > 10 {
		b.WriteString(" — **the machine was not idle; latency and CPU numbers are disturbed by other work**")
	}
	b.WriteString("\n")
}

// markdown renders the report.
func (res *results) markdown() string {
	var b strings.Builder
	res.head(&b, "sse_proxy vs reverse_proxy and nginx", "streams")
	fmt.Fprintf(&b, "- Caddy: %s, built from this repository's cmd/caddy; one Caddyfile with a reverse_proxy site, an sse_proxy site and an sse_proxy site with `share` per protocol (the TLS sites serve HTTP/2 and HTTP/3); a fresh Caddy process for every measurement\n", res.CaddyVersion)
	if res.NginxVersion != "" {
		fmt.Fprintf(&b, "- nginx: %s, one process (`master_process off`), HTTP/1.1 and HTTP/2 (TLS, same certificate), `proxy_buffering off`, `proxy_http_version 1.1`, `Connection \"\"`; a fresh process for every measurement\n", res.NginxVersion)
	}
	if res.NginxNote != "" {
		fmt.Fprintf(&b, "- %s\n", res.NginxNote)
	}
	if res.NginxH3Note != "" {
		fmt.Fprintf(&b, "- %s\n", res.NginxH3Note)
	}
	if res.QUICNote != "" {
		fmt.Fprintf(&b, "- HTTP/3: %s\n", res.QUICNote)
	}
	fmt.Fprintf(&b, "- Upstream: `sseload upstream` (HTTP/1.1); client: `sseload client`; latency = receive time − send time stamped in the event, same clock\n")
	if res.UpstreamRestarts > 0 {
		fmt.Fprintf(&b, "- **The upstream was stopped from outside the comparison and started again %d time(s)**: the measurement it died in lists lost events\n", res.UpstreamRestarts)
	}
	if res.SSENote != "" {
		fmt.Fprintf(&b, "- **%s**\n", res.SSENote)
	}
	fmt.Fprintf(&b, "- Chart: [latency.svg](latency.svg)\n\n")

	fanoutDone := false
	for _, sc := range res.plan {
		if !selected(res.Only, sc.key) {
			continue
		}
		switch sc.kind {
		case "fanout":
			if !fanoutDone {
				res.fanoutTable(&b)
				fanoutDone = true
			}
		case "latency":
			res.latencyTable(&b, sc)
		case "cost":
			res.costTable(&b, sc)
		case "idle":
			res.idleTable(&b, sc)
		}
	}

	res.budgetsAndProblems(&b, "")
	return b.String()
}

// budgetsAndProblems ends a report: the budget table, note (a paragraph
// after it, if any), and the problems of every run.
func (res *results) budgetsAndProblems(b *strings.Builder, note string) {
	b.WriteString("## Budgets\n\n| budget | measured | limit | result |\n|---|---:|---:|---|\n")
	goals := false
	for _, bu := range res.Budgets {
		fmt.Fprintf(b, "| %s | %s | %s | **%s** |\n", bu.Name, orDash(bu.Measured), orDash(bu.Limit), bu.Result)
		goals = goals || bu.Goal
	}
	b.WriteString("\n")
	if goals {
		b.WriteString("Goals (#13) are targets not yet met: their FAIL or INVALID is reported but does not change the exit status.\n\n")
	}
	b.WriteString(note)
	var notes []string
	for i := range res.Runs {
		r := &res.Runs[i]
		if p := r.problems(); len(p) > 0 {
			notes = append(notes, fmt.Sprintf("- %s / %s, round %d: %s", r.Scenario, r.Subject, r.Round, strings.Join(p, "; ")))
		}
	}
	if len(notes) > 0 {
		b.WriteString("## Problems\n\n" + strings.Join(notes, "\n") + "\n\n")
	}
}

func (res *results) header(b *strings.Builder, sc scenario, what string) {
	rounds := ""
	if sc.rounds > 1 {
		rounds = fmt.Sprintf(" × %d rounds (subjects in turn, alternating order; medians of the clean rounds)", sc.rounds)
	}
	fmt.Fprintf(b, "## %s — %d streams, %s, %s, %s window%s\n\n", sc.title, sc.n, what, protoName(sc.proto), sc.duration, rounds)
}

func (res *results) latencyTable(b *strings.Builder, sc scenario) {
	res.header(b, sc, fmt.Sprintf("%g events/s per stream (own ticker), 256 B", sc.rate))
	b.WriteString("| subject | p50 | p90 | p99 | p99 range over rounds | max | added p50 | added p99 | added p99 vs reverse_proxy | delivered / expected |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	d, rp := res.run(sc.key, "direct"), res.run(sc.key, "reverse_proxy")
	for _, key := range sc.subjects {
		r := res.run(sc.key, key)
		if r == nil {
			continue
		}
		if r.Err != "" {
			fmt.Fprintf(b, "| %s | error: %s ||||||||\n", label(key), r.Err)
			continue
		}
		l := r.Report.Latency
		addP50, addP99, vs := "—", "—", "—"
		if d != nil && d.Err == "" && key != "direct" {
			addP50 = fmtUs(l.P50 - d.Report.Latency.P50)
			addP99 = fmtUs(l.P99 - d.Report.Latency.P99)
			if rp != nil && rp.Err == "" && key != "reverse_proxy" {
				vs = fmt.Sprintf("%+.0f µs", l.P99-rp.Report.Latency.P99)
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s – %s | %s | %s | %s | %s | %d / %d |\n", rowLabel(r),
			fmtUs(l.P50), fmtUs(l.P90), fmtUs(l.P99), fmtUs(r.p99Range[0]), fmtUs(r.p99Range[1]), fmtUs(l.Max),
			addP50, addP99, vs, r.Report.Delivered, r.Report.Expected)
	}
	b.WriteString("\n")
}

func (res *results) costTable(b *strings.Builder, sc scenario) {
	res.header(b, sc, fmt.Sprintf("one broadcast of %g events/s to all streams (%.0f events/s), 256 B", sc.rate, sc.rate*float64(sc.n)))
	b.WriteString("| subject | delivered / expected | CPU s per 1k events | × reverse_proxy | CPU (% of a core) | PSS Δ per stream | × reverse_proxy | p50 | p99 | upstream streams |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	rp := res.run(sc.key, "reverse_proxy")
	for _, key := range sc.subjects {
		r := res.run(sc.key, key)
		if r == nil {
			continue
		}
		if r.Err != "" || r.Report.Process == nil {
			fmt.Fprintf(b, "| %s | error: %s |||||||\n", label(key), r.Err)
			continue
		}
		p := r.Report.Process
		name := rowLabel(r)
		if key == "direct" {
			name += " (cost of the upstream itself)"
		}
		cpuX, memX := "—", "—"
		if rp != nil && rp.Err == "" && rp.Report.Process != nil && key != "direct" {
			cpuX = ratio(p.CPUPer1k, rp.Report.Process.CPUPer1k)
			memX = ratio(p.PSSPerStreamKiB, rp.Report.Process.PSSPerStreamKiB)
		}
		fmt.Fprintf(b, "| %s | %d / %d | %.4f | %s | %.0f%% | %s | %s | %s | %s | %s |\n", name,
			r.Report.Delivered, r.Report.Expected, p.CPUPer1k, cpuX, p.CPUPercent, fmtKiB(p.PSSPerStreamKiB), memX,
			fmtUs(r.Report.Latency.P50), fmtUs(r.Report.Latency.P99), fmtCount(r.Report.UpstreamStreams))
	}
	b.WriteString("\n")
}

func (res *results) idleTable(b *strings.Builder, sc scenario) {
	res.header(b, sc, "no events (sse_proxy heartbeat 15 s)")
	b.WriteString("| subject | open streams | PSS Δ per stream | × reverse_proxy | RSS Δ per stream | PSS before → after | CPU (% of a core) | heartbeats seen | upstream streams |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	rp := res.run(sc.key, "reverse_proxy")
	for _, key := range sc.subjects {
		r := res.run(sc.key, key)
		if r == nil {
			continue
		}
		if r.Err != "" || r.Report.Process == nil {
			fmt.Fprintf(b, "| %s | error: %s ||||||\n", label(key), r.Err)
			continue
		}
		p := r.Report.Process
		memX := "—"
		if rp != nil && rp.Err == "" && rp.Report.Process != nil && key != "reverse_proxy" {
			memX = ratio(p.PSSPerStreamKiB, rp.Report.Process.PSSPerStreamKiB)
		}
		fmt.Fprintf(b, "| %s | %d / %d | %s | %s | %s | %.1f → %.1f MiB | %.2f%% | %d | %s |\n", rowLabel(r),
			r.Report.Connected, r.Report.Streams, fmtKiB(p.PSSPerStreamKiB), memX, fmtKiB(p.RSSPerStreamKiB),
			float64(p.PSSBaseKiB)/1024, float64(p.PSSEndKiB)/1024, p.CPUPercent, r.Report.Comments, fmtCount(r.Report.UpstreamStreams))
	}
	b.WriteString("\n")
}

// rowLabel is the subject's label, noting rounds left out.
func rowLabel(r *runResult) string {
	l := label(r.Subject)
	if r.rounds > 1 && r.used < r.rounds {
		l += fmt.Sprintf(" (%d of %d rounds)", r.used, r.rounds)
	}
	return l
}

func label(key string) string {
	for _, s := range subjects {
		if s.key == key {
			return s.label
		}
	}
	return key
}

func ratio(v, base float64) string {
	if base <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// fmtUs formats a duration given in microseconds.
func fmtUs(us float64) string {
	a := us
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1e6:
		return fmt.Sprintf("%.2f s", us/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.2f ms", us/1e3)
	default:
		return fmt.Sprintf("%.0f µs", us)
	}
}

func fmtKiB(k float64) string { return fmt.Sprintf("%.1f KiB", k) }

// fmtCount formats an optional count.
func fmtCount(p *int) string {
	if p == nil {
		return "—"
	}
	return fmt.Sprint(*p)
}
