package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestNginxHTTP2Syntax(t *testing.T) {
	for v, want := range map[string]bool{
		"nginx/1.22.1": false, "1.25.0": false, "nginx/1.25.1": true, "nginx/1.27.4": true, "nginx/2.0.0": true, "": false, "openresty": false,
	} {
		if got := nginxHasHTTP2Directive(v); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

func TestCaddyfileServesHTTP3(t *testing.T) {
	cf := caddyfile([]site{{subject: "sse_proxy_share", proto: "h2", port: 1002}}, "127.0.0.1:9000", "/c.pem", "/k.pem")
	if !strings.Contains(cf, "protocols h1 h2 h3") {
		t.Errorf("no HTTP/3:\n%s", cf)
	}
	if cf := clusterCaddyfile("cluster_local", 0, [2]int{1, 2}, "127.0.0.1:9000", "", 0, "/c", "/k"); !strings.Contains(cf, "protocols h1 h2\n") {
		t.Errorf("cluster Caddyfiles changed protocols:\n%s", cf)
	}
}

func TestSelected(t *testing.T) {
	for _, c := range []struct {
		only []string
		key  string
		want bool
	}{
		{nil, "latency", true},
		{[]string{"fanout"}, "fanout-8k-h2conn", true},
		{[]string{"fanout"}, "latency", false},
		{[]string{"fanout-8k"}, "fanout-8k-h3", true},
		{[]string{"fanout-8k"}, "fanout-2k-h1", false},
		{[]string{"fanout-8k-h2"}, "fanout-8k-h2conn", false}, // a prefix counts only up to a dash
		{[]string{"idle", "fanout-2k-h1"}, "fanout-2k-h1", true},
		{[]string{"idle"}, "idle-cpu-h2", true},
	} {
		if got := selected(c.only, c.key); got != c.want {
			t.Errorf("selected(%v, %s) = %v, want %v", c.only, c.key, got, c.want)
		}
	}
}

func TestFanoutPlan(t *testing.T) {
	keys := map[string]scenario{}
	for _, sc := range scenarios(false) {
		if sc.kind == "fanout" {
			keys[sc.key] = sc
		}
	}
	want := map[string]struct {
		n, perConn, subjects int
		rate                 float64
	}{
		"fanout-2k-h1": {2000, 0, 3, 10}, "fanout-2k-h2": {2000, 0, 3, 10}, "fanout-2k-h3": {2000, 0, 2, 10},
		"fanout-8k-h1": {8000, 0, 3, 2}, "fanout-8k-h2": {8000, 0, 3, 2}, "fanout-8k-h3": {8000, 0, 2, 2},
		"fanout-8k-h2conn": {8000, 1, 3, 2},
	}
	if len(keys) != len(want) {
		t.Fatalf("fan-out scenarios %v", keys)
	}
	for k, w := range want {
		sc, ok := keys[k]
		if !ok || sc.n != w.n || sc.h2PerConn != w.perConn || len(sc.subjects) != w.subjects || sc.rate != w.rate || sc.rounds != 3 ||
			!strings.Contains(sc.query, "size=200") || !strings.Contains(sc.query, "mode=broadcast") {
			t.Errorf("%s: %+v", k, sc)
		}
	}
	for _, sc := range scenarios(true) {
		if sc.kind == "fanout" && (sc.rounds != 1 || sc.n > 1000) {
			t.Errorf("quick %s: %d clients, %d rounds", sc.key, sc.n, sc.rounds)
		}
	}
	// The quick fan-out smoke run fits in 5 minutes; the full one in the run's time limit.
	if d := plannedTime(scenarios(true), []string{"fanout"}); d > 5*60e9 {
		t.Errorf("quick fan-out planned at %s", d)
	}
}

func TestFDShortfall(t *testing.T) {
	sc := scenario{key: "fanout-8k-h2conn", proto: "h2", n: 8000, h2PerConn: 1}
	for _, c := range []struct {
		key   string
		limit uint64
		skip  bool
	}{
		{"sse_proxy_share", 20000, false}, {"reverse_proxy", 20000, false}, {"nginx", 20000, false},
		{"reverse_proxy", 16000, true}, {"sse_proxy_share", 16000, false}, {"sse_proxy_share", 8000, true},
		{"reverse_proxy", 0, false}, // unknown limit: try
	} {
		why := fdShortfall(sc, c.key, c.limit)
		if (why != "") != c.skip {
			t.Errorf("%s with %d open files: %q", c.key, c.limit, why)
		}
	}
	h3 := scenario{proto: "h3", n: 8000}
	if why := fdShortfall(h3, "sse_proxy_share", 1000); why != "" {
		t.Errorf("shared HTTP/3 needs few files: %s", why)
	}
}

// fanoutRun is one round of a fan-out scenario with the given numbers.
func fanoutRun(sc, subj string, round int, p50, p99, cpuPer1k, pss float64) runResult {
	r := runResult{Scenario: sc, Subject: subj, Round: round, Proto: "h2", Streams: 10}
	r.Report = clientReport{Streams: 10, Connected: 10, Delivered: 1000, Expected: 1000, ReceivedInWindow: 1000}
	r.Report.Latency = latency{Count: 1000, P50: p50, P99: p99}
	r.Report.Process = &procReport{CPUSeconds: cpuPer1k, CPUPer1k: cpuPer1k, PSSPerStreamKiB: pss}
	return r
}

func TestFanoutTableAndGoals(t *testing.T) {
	res := &results{SSEAvailable: true, Only: []string{"fanout-2k-h2", "fanout-8k-h3", "fanout-8k-h2conn"},
		NginxH3Note: "nginx: no HTTP/3 module in this build"}
	for round := 1; round <= 3; round++ {
		d := float64(round)
		res.Runs = append(res.Runs,
			fanoutRun("fanout-2k-h2", "reverse_proxy", round, 4000, 9000, 0.02, 50),
			fanoutRun("fanout-2k-h2", "sse_proxy_share", round, 2000+1000*d, 8000, 0.010, 30),
			fanoutRun("fanout-2k-h2", "nginx", round, 3000, 16000, 0.011, 18),
			fanoutRun("fanout-8k-h3", "reverse_proxy", round, 4000, 9000, 0.02, 50),
			fanoutRun("fanout-8k-h3", "sse_proxy_share", round, 3000, 8000, 0.01, 30),
		)
	}
	// Latency from origin: the upstream's fan-out adds to nginx's; reverse_proxy's
	// 2k rounds come from an older sseload without it.
	for i := range res.Runs {
		r := &res.Runs[i]
		if r.Scenario == "fanout-2k-h2" && r.Subject != "reverse_proxy" {
			extra := 100.0
			if r.Subject == "nginx" {
				extra = 2000 * float64(r.Round)
			}
			r.Report.OriginLatency = &latency{Count: 1000, P50: r.Report.Latency.P50 + extra, P99: r.Report.Latency.P99 + extra}
		}
	}
	// One round of share lost events: left out, the row says 2 of 3.
	res.Runs[len(res.Runs)-1].Report.Gaps = 3
	res.Runs = append(res.Runs, runResult{Scenario: "fanout-8k-h2conn", Subject: "reverse_proxy", Round: 1, Skipped: "not enough open files"})
	broken := fanoutRun("fanout-8k-h2conn", "nginx", 1, 1, 1, 1, 1)
	broken.Report.EndedEarly = 10
	res.Runs = append(res.Runs, broken)
	res.evaluate(scenarios(false))
	verdicts := map[string]string{}
	for _, b := range res.Budgets {
		if b.Goal {
			verdicts[b.Name] = b.Result
		}
	}
	for name, want := range map[string]string{
		"goal (#13): share p50 / p99 ≤ nginx's (2000 clients, HTTP/2)":                          "FAIL", // median p50 4 ms > 3 ms
		"goal (#13): share p50 / p99 ≤ Caddy reverse_proxy's (2000 clients, HTTP/2)":            "PASS",
		"goal (#13): share CPU per event ≤ nginx's (2000 clients, HTTP/2)":                      "PASS",
		"goal (#13): share PSS per client ≤ nginx's (2000 clients, HTTP/2)":                     "FAIL",
		"goal (#13): share p50 / p99 ≤ Caddy reverse_proxy's (8000 clients, HTTP/3)":            "PASS",
		"goal (#13): share p50 / p99 ≤ nginx's (8000 clients, HTTP/2, a connection per client)": "SKIP",
	} {
		if verdicts[name] != want {
			t.Errorf("%s: %q, want %s (all: %v)", name, verdicts[name], want, verdicts)
		}
	}
	if len(verdicts) != 4+1+4 {
		t.Errorf("%d goals: %v", len(verdicts), verdicts)
	}
	if res.anyFail {
		t.Error("a failed goal changed the exit status")
	}
	md := res.markdown()
	for _, want := range []string{
		"## Fan-out at browser scale",
		"| 2000 × 10 | HTTP/2 | Caddy sse_proxy (share) | 3000 / 3000 | 4.00 ms (3.00 ms–5.00 ms) | 8.00 ms (8.00 ms–8.00 ms) | 4.10 ms (3.10 ms–5.10 ms) | 8.10 ms (8.10 ms–8.10 ms) |",
		"| 2000 × 10 | HTTP/2 | nginx | 3000 / 3000 | 3.00 ms (3.00 ms–3.00 ms) | 16.00 ms (16.00 ms–16.00 ms) | 7.00 ms (5.00 ms–9.00 ms) | 20.00 ms (18.00 ms–22.00 ms) |",
		"| 2000 × 10 | HTTP/2 | Caddy reverse_proxy | 3000 / 3000 | 4.00 ms (4.00 ms–4.00 ms) | 9.00 ms (9.00 ms–9.00 ms) | — | — |",
		"| 1.33× · 0.50× · 0.91× · 1.67× |", // share ÷ nginx
		"| 8000 × 2 | HTTP/3 | Caddy sse_proxy (share) (2 of 3 rounds) |",
		"| 8000 × 2 | HTTP/3 | nginx | nginx: no HTTP/3 module in this build |",
		"| 8000 × 2 | HTTP/2, a connection per client | Caddy reverse_proxy | skipped: not enough open files |",
		"| 8000 × 2 | HTTP/2, a connection per client | nginx | invalid, no clean round (see Problems): round 1: 10 streams ended early |",
		"Noise: the widest range over the rounds of one subject, as a share of its median: p50 50% (fanout-2k-h2, Caddy sse_proxy (share))",
		"does not change the exit status",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	// Every row of the fan-out table, numbers or a message, has the header's cells.
	_, table, _ := strings.Cut(md, "| clients × events/s |")
	table, _, _ = strings.Cut("| clients × events/s |"+table, "\n\n")
	lines := strings.Split(table, "\n")
	for _, line := range lines[1:] {
		if strings.Count(line, "|") != strings.Count(lines[0], "|") {
			t.Errorf("row has %d cell borders, the header %d: %s", strings.Count(line, "|"), strings.Count(lines[0], "|"), line)
		}
	}
	if len(lines) < 8 {
		t.Errorf("fan-out table of %d lines:\n%s", len(lines), table)
	}
	if strings.Contains(md, "Added latency") || strings.Contains(md, fmt.Sprintf("| %d × 10 | HTTP/1.1", 2000)) {
		t.Errorf("scenarios not selected in the report:\n%s", md)
	}
}

func TestQUICWarningNoted(t *testing.T) {
	b := &bench{}
	b.noteQUICWarning("Caddy's log", `{"level":"warn","msg":"admin endpoint disabled"}`+"\n")
	if b.quicNote != "" {
		t.Fatalf("noted %q", b.quicNote)
	}
	line := "2026/12/02 01:00:00 failed to sufficiently increase receive buffer size (was: 208 kiB, wanted: 7168 kiB, got: 416 kiB). See https://github.com/quic-go/quic-go/wiki/UDP-Buffer-Sizes for details."
	b.noteQUICWarning("sseload client", "x\n"+line+"\n")
	if !strings.Contains(b.quicNote, "sseload client") || !strings.Contains(b.quicNote, "wanted: 7168 kiB") {
		t.Fatalf("noted %q", b.quicNote)
	}
	res := &results{QUICNote: b.quicNote, SSEAvailable: true}
	if !strings.Contains(res.markdown(), "HTTP/3: quic-go warned in sseload client") {
		t.Error("the report does not say quic-go warned")
	}
}
