package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fanoutSubjects are measured in the fan-out scenarios over HTTP/1.1 and
// HTTP/2; over HTTP/3 nginx is left out (fanoutNoH3 says why in the report).
var (
	fanoutSubjects   = []string{"reverse_proxy", "sse_proxy_share", "nginx"}
	fanoutH3Subjects = []string{"reverse_proxy", "sse_proxy_share"}
)

// fanoutScenarios are the "Fan-out at browser scale" scenarios (issue #13):
// one broadcast of 200-byte events to 2,000 clients at 10 events/s and to
// 8,000 at 2 events/s, over HTTP/1.1, HTTP/2 (streams packed on as few
// connections as the server allows) and HTTP/3, and 8,000 clients over
// HTTP/2 with a connection each, as browsers have. -quick: 500 and 1,000
// clients, one round, short windows.
func fanoutScenarios(quick bool) []scenario {
	small, big, rounds := 2000, 8000, 3
	rampSmall, rampBig, warmup, window := 5*time.Second, 15*time.Second, 5*time.Second, 15*time.Second
	if quick {
		small, big, rounds = 500, 1000, 1
		rampSmall, rampBig, warmup, window = 2*time.Second, 2*time.Second, 2*time.Second, 5*time.Second
	}
	var out []scenario
	add := func(size, proto string, n int, rate float64, ramp time.Duration, perConn int) {
		subjects := fanoutSubjects
		if proto == "h3" {
			subjects = fanoutH3Subjects
		}
		key := "fanout-" + size + "-" + proto
		if perConn > 0 {
			key += "conn"
		}
		out = append(out, scenario{key: key, kind: "fanout", title: "Fan-out at browser scale", proto: proto,
			subjects: subjects, n: n, rounds: rounds, h2PerConn: perConn,
			query: fmt.Sprintf("rate=%g&size=200&mode=broadcast", rate), rate: rate,
			duration: window, ramp: ramp, warmup: warmup})
	}
	for _, proto := range []string{"h1", "h2", "h3"} {
		add("2k", proto, small, 10, rampSmall, 0)
	}
	for _, proto := range []string{"h1", "h2", "h3"} {
		add("8k", proto, big, 2, rampBig, 0)
	}
	add("8k", "h2", big, 2, rampBig, 1)
	return out
}

// selected reports whether -only (empty: everything) selects scenario key:
// an entry names a scenario or, as a prefix up to a dash, a group of them
// ("fanout" selects every fanout-*, "fanout-8k" the 8,000-client ones).
func selected(only []string, key string) bool {
	if len(only) == 0 {
		return true
	}
	return slices.ContainsFunc(only, func(o string) bool { return o == key || strings.HasPrefix(key, o+"-") })
}

// plannedTime estimates how long the selected scenarios of plan take: per
// run its ramp, warm-up and window plus 5 s to start the proxy, wait for
// the events' tails and stop.
func plannedTime(plan []scenario, only []string) time.Duration {
	var d time.Duration
	for _, sc := range plan {
		if selected(only, sc.key) {
			d += time.Duration(sc.rounds*len(sc.subjects)) * (sc.ramp + sc.warmup + sc.duration + 5*time.Second)
		}
	}
	return d
}

// openFileLimit is this process's hard RLIMIT_NOFILE, which the processes
// it starts inherit (Go programs raise their soft limit to it), or 0 if
// unknown.
func openFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return lim.Max
}

// nginxMaxFiles is the config's worker_rlimit_nofile and worker_connections.
const nginxMaxFiles = 20000

// fdShortfall says why scenario sc cannot be measured against subject key
// within the open-file limit, or "" if it can. It counts connections as
// sseload's openFilesNeeded does (HTTP/2: at most 100 streams per
// connection, or -h2-streams-per-conn; HTTP/3: a UDP socket per 100
// streams on the client, one in the proxy), plus an upstream connection per
// client unless the subject shares one upstream stream, plus 100 spare.
func fdShortfall(sc scenario, key string, limit uint64) string {
	if limit == 0 {
		return ""
	}
	clientSide := func(serverSide bool) int {
		switch sc.proto {
		case "h2":
			per := 100
			if sc.h2PerConn > 0 {
				per = min(per, sc.h2PerConn)
			}
			return (sc.n + per - 1) / per
		case "h3":
			if serverSide {
				return 1
			}
			return (sc.n + 99) / 100
		}
		return sc.n
	}
	upstream := sc.n
	if key == "sse_proxy_share" {
		upstream = 1
	}
	proxyLimit := limit
	if subjectKind(key) == "nginx" {
		proxyLimit = min(limit, nginxMaxFiles)
	}
	for _, need := range []struct {
		who   string
		files int
		limit uint64
	}{
		{"the client", clientSide(false) + 100, limit},
		{label(key), clientSide(true) + upstream + 100, proxyLimit},
		{"the upstream", upstream + 100, limit},
	} {
		if uint64(need.files) > need.limit {
			return fmt.Sprintf("%s would need about %d open files, the limit is %d (ulimit -Hn)", need.who, need.files, need.limit)
		}
	}
	return ""
}

// quicBufferWarning is what quic-go logs when it cannot get the UDP receive
// or send buffer it wants (net.core.rmem_max / wmem_max too small).
const quicBufferWarning = "UDP-Buffer-Sizes"

// noteQUICWarning keeps quic-go's buffer-size warning, if text (a log, from
// source) has it, for the report, once.
func (b *bench) noteQUICWarning(source, text string) {
	if b.quicNote != "" {
		return
	}
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, quicBufferWarning) {
			b.quicNote = fmt.Sprintf("quic-go warned in %s: %s", source, lastErrorLine(line))
			return
		}
	}
}

// roundStat is one number of a combined result: the median of its rounds
// and their range, the noise.
type roundStat struct{ med, lo, hi float64 }

func newRoundStat(v []float64) roundStat {
	if len(v) == 0 {
		return roundStat{}
	}
	return roundStat{median(v), slices.Min(v), slices.Max(v)}
}

// spread is (max − min) / median, or 0.
func (s roundStat) spread() float64 {
	if s.med <= 0 {
		return 0
	}
	return (s.hi - s.lo) / s.med
}

func (s roundStat) format(f func(float64) string, rounds int) string {
	if rounds < 2 {
		return f(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.med), f(s.lo), f(s.hi))
}

// fanoutStats are the fan-out table's numbers of one subject in one
// scenario, each the median of the rounds used with their range. p50 and
// p99 are latency from send; op50 and op99 from origin (the broadcast
// tick), over the originRounds rounds that report it.
type fanoutStats struct {
	rounds, originRounds           int
	p50, p99, op50, op99, cpu, pss roundStat
}

// fanoutStatsOf reads the rounds combined into r (see results.run).
func fanoutStatsOf(r *runResult) fanoutStats {
	var p50, p99, op50, op99, cpu, pss []float64
	for _, u := range r.usedRuns {
		p50, p99 = append(p50, u.Report.Latency.P50), append(p99, u.Report.Latency.P99)
		if o := u.Report.OriginLatency; o != nil {
			op50, op99 = append(op50, o.P50), append(op99, o.P99)
		}
		if p := u.Report.Process; p != nil {
			cpu, pss = append(cpu, p.CPUPer1k), append(pss, p.PSSPerStreamKiB)
		}
	}
	return fanoutStats{rounds: len(r.usedRuns), originRounds: len(op50),
		p50: newRoundStat(p50), p99: newRoundStat(p99), op50: newRoundStat(op50), op99: newRoundStat(op99),
		cpu: newRoundStat(cpu), pss: newRoundStat(pss)}
}

// originCell formats a latency from origin, or "—" if no round reported one.
func (st fanoutStats) originCell(s roundStat) string {
	if st.originRounds == 0 {
		return "—"
	}
	return s.format(fmtUs, st.originRounds)
}

// measurable reports whether r holds clean numbers.
func measurable(r *runResult) bool {
	return r != nil && r.Skipped == "" && r.Err == "" && len(r.problems()) == 0 && r.Report.Process != nil && len(r.usedRuns) > 0
}

// fanoutProto names the protocol of a fan-out scenario.
func fanoutProto(sc scenario) string {
	switch {
	case sc.proto == "h2" && sc.h2PerConn == 1:
		return "HTTP/2, a connection per client"
	case sc.proto == "h2" && sc.h2PerConn > 1:
		return fmt.Sprintf("HTTP/2, %d clients per connection", sc.h2PerConn)
	case sc.proto == "h2":
		return "HTTP/2"
	case sc.proto == "h3":
		return "HTTP/3"
	}
	return "HTTP/1.1"
}

// shareRatios formats share's numbers over another subject's: p50 · p99 ·
// CPU · PSS, or why not.
func shareRatios(sh, other fanoutStats) string {
	return strings.Join([]string{ratio(sh.p50.med, other.p50.med), ratio(sh.p99.med, other.p99.med),
		ratio(sh.cpu.med, other.cpu.med), ratio(sh.pss.med, other.pss.med)}, " · ")
}

// fanoutTable renders every fan-out scenario of the plan in one table.
func (res *results) fanoutTable(b *strings.Builder) {
	var scs []scenario
	for _, sc := range res.plan {
		if sc.kind == "fanout" && selected(res.Only, sc.key) {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		return
	}
	sc0 := scs[0]
	rounds := "one round"
	if sc0.rounds > 1 {
		rounds = fmt.Sprintf("%d rounds (subjects in turn, alternating order)", sc0.rounds)
	}
	fmt.Fprintf(b, "## Fan-out at browser scale — one broadcast of 200 B events to every client, %s, %s window after a %s warm-up\n\n", rounds, sc0.duration, sc0.warmup)
	b.WriteString("`share` reads the broadcast once from the upstream; reverse_proxy and nginx read it once per client. " +
		"Each cell is the median over the clean rounds, with the range over them (min–max) as the noise. " +
		"HTTP/2 streams go on as few connections as the server allows (Caddy 250, nginx 128 streams per connection) unless the row says a connection per client; " +
		"HTTP/3: 100 streams per QUIC connection. share ÷: share's median over the other subject's of the same scenario, p50 · p99 · CPU · PSS. " +
		"p50 and p99 are from send: receive time − the time the upstream wrote the event to the client's upstream stream, which leaves out the upstream's fan-out of each tick to one stream per client (reverse_proxy, nginx) but not share's own fan-out. " +
		"From origin: receive time − the time the upstream made the tick, which includes the fan-out for every subject alike.\n\n")
	b.WriteString("| clients × events/s | protocol | subject | delivered / expected | p50 | p99 | p50 from origin | p99 from origin | CPU s per 1k events | PSS per client | upstream streams | share ÷ nginx (p50 · p99 · CPU · PSS) | share ÷ reverse_proxy (same) |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	// rest fills the cells after a message that replaces a row's numbers.
	const rest = "||||||||||"
	type worst struct {
		v    float64
		what string
	}
	var noise [4]worst // p50, p99, CPU, PSS
	for _, sc := range scs {
		head := fmt.Sprintf("| %d × %g | %s |", sc.n, sc.rate, fanoutProto(sc))
		stats := map[string]fanoutStats{}
		for _, key := range sc.subjects {
			if r := res.run(sc.key, key); measurable(r) {
				stats[key] = fanoutStatsOf(r)
			}
		}
		for _, key := range sc.subjects {
			r := res.run(sc.key, key)
			switch {
			case r == nil:
				fmt.Fprintf(b, "%s %s | not measured %s\n", head, label(key), rest)
				continue
			case r.Skipped != "":
				fmt.Fprintf(b, "%s %s | skipped: %s %s\n", head, label(key), r.Skipped, rest)
				continue
			case r.Err != "" || r.Report.Process == nil:
				fmt.Fprintf(b, "%s %s | error: %s %s\n", head, label(key), r.Err, rest)
				continue
			case len(r.problems()) > 0:
				// No clean round: numbers from broken rounds would mislead.
				fmt.Fprintf(b, "%s %s | invalid, no clean round (see Problems): %s %s\n", head, label(key), r.problems()[0], rest)
				continue
			}
			st := fanoutStatsOf(r)
			vsNginx, vsRP := "—", "—"
			if key == "sse_proxy_share" {
				if ng, ok := stats["nginx"]; ok {
					vsNginx = shareRatios(st, ng)
				}
				if rp, ok := stats["reverse_proxy"]; ok {
					vsRP = shareRatios(st, rp)
				}
			}
			fmt.Fprintf(b, "%s %s | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", head, rowLabel(r),
				r.Report.Delivered, r.Report.Expected,
				st.p50.format(fmtUs, st.rounds), st.p99.format(fmtUs, st.rounds), st.originCell(st.op50), st.originCell(st.op99),
				st.cpu.format(func(v float64) string { return fmt.Sprintf("%.4f", v) }, st.rounds),
				st.pss.format(fmtKiB, st.rounds), fmtCount(r.Report.UpstreamStreams), vsNginx, vsRP)
			for i, s := range []roundStat{st.p50, st.p99, st.cpu, st.pss} {
				if st.rounds > 1 && s.spread() > noise[i].v {
					noise[i] = worst{s.spread(), fmt.Sprintf("%s, %s", sc.key, label(key))}
				}
			}
		}
		if sc.proto == "h3" && res.NginxH3Note != "" {
			fmt.Fprintf(b, "%s nginx | %s %s\n", head, res.NginxH3Note, rest)
		}
	}
	b.WriteString("\n")
	if sc0.rounds > 1 {
		b.WriteString("Noise: the widest range over the rounds of one subject, as a share of its median:")
		for i, name := range []string{"p50", "p99", "CPU per event", "PSS per client"} {
			sep := ","
			if i == 0 {
				sep = ""
			}
			if noise[i].what == "" {
				fmt.Fprintf(b, "%s %s —", sep, name)
				continue
			}
			fmt.Fprintf(b, "%s %s %.0f%% (%s)", sep, name, 100*noise[i].v, noise[i].what)
		}
		b.WriteString(".\n\n")
	}
	if res.QUICNote != "" {
		fmt.Fprintf(b, "HTTP/3: %s\n\n", res.QUICNote)
	}
}

// fanoutGoals adds the issue #13 goals for every fan-out scenario measured:
// share's p50 and p99 at or below reverse_proxy's (all protocols) and
// nginx's (HTTP/1.1 and HTTP/2), its CPU per event and PSS per client at or
// below nginx's. They are goals, not yet met: a FAIL shows in the report
// but does not change the exit status.
func (res *results) fanoutGoals(plan []scenario) {
	for _, sc := range plan {
		if sc.kind != "fanout" || !selected(res.Only, sc.key) {
			continue
		}
		if !slices.ContainsFunc(res.Runs, func(r runResult) bool { return r.Scenario == sc.key }) {
			continue // not run at all: no verdicts to clutter the table
		}
		what := fmt.Sprintf("%d clients, %s", sc.n, fanoutProto(sc))
		sh := res.run(sc.key, "sse_proxy_share")
		for _, other := range []string{"nginx", "reverse_proxy"} {
			if !slices.Contains(sc.subjects, other) {
				continue
			}
			o := res.run(sc.key, other)
			res.goal(fmt.Sprintf("share p50 / p99 ≤ %s's (%s)", label(other), what), sh, o, func(s, o fanoutStats) (string, string, bool) {
				return fmtUs(s.p50.med) + " / " + fmtUs(s.p99.med), fmtUs(o.p50.med) + " / " + fmtUs(o.p99.med),
					s.p50.med <= o.p50.med && s.p99.med <= o.p99.med
			})
			if other != "nginx" {
				continue
			}
			res.goal(fmt.Sprintf("share CPU per event ≤ nginx's (%s)", what), sh, o, func(s, o fanoutStats) (string, string, bool) {
				return fmt.Sprintf("%.4f CPU s/1k events", s.cpu.med), fmt.Sprintf("%.4f CPU s/1k events", o.cpu.med), s.cpu.med <= o.cpu.med
			})
			res.goal(fmt.Sprintf("share PSS per client ≤ nginx's (%s)", what), sh, o, func(s, o fanoutStats) (string, string, bool) {
				return fmtKiB(s.pss.med), fmtKiB(o.pss.med), s.pss.med <= o.pss.med
			})
		}
	}
}

// goal appends one goal verdict comparing share's combined result sh with
// another subject's o.
func (res *results) goal(name string, sh, o *runResult, judge func(share, other fanoutStats) (measured, limit string, ok bool)) {
	b := budget{Name: "goal (#13): " + name, Goal: true}
	switch {
	case !res.SSEAvailable:
		b.Result = "SKIP"
	case sh == nil || o == nil:
		b.Result, b.Measured = "SKIP", "not measured"
	case sh.Skipped != "" || o.Skipped != "":
		b.Result, b.Measured = "SKIP", "skipped: "+sh.Skipped+o.Skipped
	case !measurable(sh) || !measurable(o):
		b.Result = "INVALID"
	default:
		var ok bool
		b.Measured, b.Limit, ok = judge(fanoutStatsOf(sh), fanoutStatsOf(o))
		b.Result = "PASS"
		if !ok {
			b.Result = "FAIL"
		}
	}
	res.Budgets = append(res.Budgets, b)
}
