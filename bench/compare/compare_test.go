package main

import (
	"strings"
	"testing"
)

func TestCaddyfileSites(t *testing.T) {
	cf := caddyfile([]site{
		{subject: "reverse_proxy", proto: "h1", port: 1001},
		{subject: "sse_proxy", proto: "h2", port: 1002},
		{subject: "sse_proxy_share", proto: "h1", port: 1003},
	}, "127.0.0.1:9000", "/c.pem", "/k.pem")
	for _, want := range []string{
		"admin off",
		"http://127.0.0.1:1001 {\n\tbind 127.0.0.1\n\treverse_proxy 127.0.0.1:9000\n}",
		"https://127.0.0.1:1002 {\n\tbind 127.0.0.1\n\ttls /c.pem /k.pem\n\tsse_proxy 127.0.0.1:9000 {\n\t\theartbeat 15s\n\t}\n}",
		"http://127.0.0.1:1003 {\n\tbind 127.0.0.1\n\tsse_proxy 127.0.0.1:9000 {\n\t\theartbeat 15s\n\t\tshare\n\t}\n}",
	} {
		if !strings.Contains(cf, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, cf)
		}
	}
}

func TestNginxConfig(t *testing.T) {
	conf := nginxConfig("/tmp/x/nginx", 1004, "127.0.0.1:9000", 1005, "/c.pem", "/k.pem", "nginx/1.22.1")
	for _, want := range []string{
		"master_process off;", "daemon off;", "listen 127.0.0.1:1004;", "server 127.0.0.1:9000;",
		"proxy_buffering off;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`,
		"listen 127.0.0.1:1005 ssl http2;", "ssl_certificate /c.pem;", "ssl_certificate_key /k.pem;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx config lacks %q:\n%s", want, conf)
		}
	}
	if n := strings.Count(conf, "proxy_buffering off;"); n != 2 {
		t.Errorf("%d locations with proxy_buffering off, want one per server", n)
	}
	conf = nginxConfig("/tmp/x/nginx", 1004, "127.0.0.1:9000", 1005, "/c.pem", "/k.pem", "nginx/1.26.3")
	if !strings.Contains(conf, "listen 127.0.0.1:1005 ssl;\n\t\thttp2 on;") {
		t.Errorf("nginx 1.26 config without `http2 on`:\n%s", conf)
	}
	if conf := nginxConfig("/tmp/x/nginx", 1004, "127.0.0.1:9000", 0, "", "", ""); strings.Contains(conf, "ssl") {
		t.Errorf("HTTP/2 server without a port:\n%s", conf)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestCombineRounds(t *testing.T) {
	mk := func(round int, p99, cpu float64, events uint64) runResult {
		r := runResult{Scenario: "s", Subject: "x", Round: round, Streams: 10}
		r.Report = clientReport{Streams: 10, Connected: 10, Delivered: events, Expected: events, ReceivedInWindow: events}
		r.Report.Latency = latency{Count: events, P50: 1, P90: 2, P99: p99, Max: p99 * 2}
		r.Report.Process = &procReport{CPUSeconds: cpu, PSSPerStreamKiB: p99}
		return r
	}
	res := &results{Runs: []runResult{mk(1, 100, 1, 1000), mk(2, 300, 3, 1000), mk(3, 200, 2, 2000)}}
	c := res.run("s", "x")
	if c.Report.Latency.P99 != 200 || c.Report.Latency.Max != 600 || c.p99Range != [2]float64{100, 300} {
		t.Errorf("latency %+v range %v", c.Report.Latency, c.p99Range)
	}
	if got := c.Report.Process.CPUPer1k; got != 6.0/4000*1000 {
		t.Errorf("CPU per 1k events %v", got)
	}
	if c.Report.Delivered != 4000 || len(c.problems()) != 0 {
		t.Errorf("delivered %d problems %v", c.Report.Delivered, c.problems())
	}
	// A round with problems is left out while a clean one remains.
	res.Runs[1].Report.Gaps = 5
	c = res.run("s", "x")
	if len(c.problems()) != 0 || c.used != 2 || c.Report.Latency.P99 != 150 {
		t.Errorf("used %d p99 %v problems %v", c.used, c.Report.Latency.P99, c.problems())
	}
	res.Runs[0].Report.Gaps, res.Runs[2].Report.Gaps = 1, 1
	if p := res.run("s", "x").problems(); len(p) != 3 || !strings.Contains(p[1], "round 2") {
		t.Errorf("problems %v", p)
	}
	if res.run("s", "y") != nil {
		t.Error("found a subject that was not measured")
	}
}

func TestBudgetVerdicts(t *testing.T) {
	mk := func(sc, subj string, p99, cpu, pss float64) runResult {
		r := runResult{Scenario: sc, Subject: subj, Round: 1, Streams: 10}
		r.Report = clientReport{Streams: 10, Connected: 10, Delivered: 100, Expected: 100, ReceivedInWindow: 100}
		r.Report.Latency = latency{Count: 100, P99: p99}
		r.Report.Process = &procReport{CPUSeconds: cpu, PSSPerStreamKiB: pss}
		return r
	}
	res := &results{SSEAvailable: true, Runs: []runResult{
		mk("latency", "direct", 100, 1, 1), mk("latency", "reverse_proxy", 300, 1, 1), mk("latency", "sse_proxy", 390, 1, 1),
		mk("broadcast-h1", "reverse_proxy", 0, 1.0, 1), mk("broadcast-h1", "sse_proxy", 0, 1.2, 1),
		mk("broadcast-h2", "reverse_proxy", 0, 1.0, 1), mk("broadcast-h2", "sse_proxy", 0, 1.05, 1),
		mk("idle", "reverse_proxy", 0, 0, 50), mk("idle", "sse_proxy", 0, 0, 54),
		mk("idle", "sse_proxy_share", 0, 0, 12), mk("idle", "nginx", 0, 0, 14),
		mk("broadcast-h1", "sse_proxy_share", 0, 0.5, 1), mk("broadcast-h1", "nginx", 0, 0.4, 1),
		mk("shared-h2-many", "sse_proxy_share", 0, 1, 1),
		mk("idle-cpu-h2", "sse_proxy", 0, 1, 1),
	}}
	one := 1
	res.Runs[len(res.Runs)-2].Report.UpstreamStreams = &one
	res.Runs[len(res.Runs)-1].Report.Process.CPUPercent = 4.2
	res.evaluate(scenarios(false))
	want := []string{"PASS", "FAIL", "PASS", "PASS", "PASS", "FAIL", "PASS", "PASS"}
	if len(res.Budgets) != len(want) {
		t.Fatalf("%d budgets, want %d: %+v", len(res.Budgets), len(want), res.Budgets)
	}
	for i, b := range res.Budgets {
		if b.Result != want[i] {
			t.Errorf("%s: %s, want %s", b.Name, b.Result, want[i])
		}
	}
	if !res.anyFail {
		t.Error("a failed budget did not mark the run failed")
	}
	if md := res.markdown(); !strings.Contains(md, "**FAIL**") || !strings.Contains(res.chart(), "<svg") {
		t.Error("report or chart missing")
	}
}

func TestShareMustUseOneUpstreamStream(t *testing.T) {
	r := runResult{Scenario: "idle", Subject: "sse_proxy_share", Round: 1, Streams: 10}
	r.Report = clientReport{Streams: 10, Connected: 10, Process: &procReport{}}
	n := 10
	r.Report.UpstreamStreams = &n
	if p := r.problems(); len(p) != 1 || !strings.Contains(p[0], "not shared") {
		t.Errorf("10 upstream streams for a shared subject: problems %v", p)
	}
	r.Subject = "sse_proxy"
	if p := r.problems(); len(p) != 0 {
		t.Errorf("unshared: problems %v", p)
	}
}

func TestOnlySkipsBudgetsOfScenariosNotRun(t *testing.T) {
	r := runResult{Scenario: "idle-cpu-h2", Subject: "sse_proxy", Round: 1, Streams: 10}
	r.Report = clientReport{Streams: 10, Connected: 10, Process: &procReport{CPUPercent: 1}}
	res := &results{SSEAvailable: true, Only: []string{"idle-cpu-h2"}, Runs: []runResult{r}}
	res.evaluate(scenarios(false))
	for _, b := range res.Budgets {
		want := "SKIP"
		if strings.HasPrefix(b.Name, "idle CPU") {
			want = "PASS"
		}
		if b.Result != want {
			t.Errorf("%s: %s, want %s", b.Name, b.Result, want)
		}
	}
	if res.anyFail || strings.Contains(res.markdown(), "Added latency") {
		t.Error("scenarios not run count as failed or get a table")
	}
}
