package main

import (
	"strings"
	"testing"
	"time"
)

func TestClusterCaddyfile(t *testing.T) {
	redis := clusterCaddyfile("cluster_redis", 2, [2]int{1001, 1002}, "127.0.0.1:9000", "/tmp/r.sock", 5*time.Second, "/c.pem", "/k.pem")
	for _, want := range []string{
		"admin off",
		"http://127.0.0.1:1001 {\n\tbind 127.0.0.1\n\tsse_proxy 127.0.0.1:9000 {\n\t\theartbeat 15s\n\t\tshare {http.request.uri}\n\t\tstore redis /tmp/r.sock {\n\t\t\tlease 5s\n\t\t}\n\t}\n}",
		"https://127.0.0.1:1002 {\n\tbind 127.0.0.1\n\ttls /c.pem /k.pem\n",
	} {
		if !strings.Contains(redis, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, redis)
		}
	}
	local := clusterCaddyfile("cluster_local", 1, [2]int{1001, 1002}, "127.0.0.1:9000", "/tmp/r.sock", 5*time.Second, "/c.pem", "/k.pem")
	if strings.Contains(local, "store") || !strings.Contains(local, "share {http.request.uri}") {
		t.Errorf("in-process subject:\n%s", local)
	}
}

func TestClusterPlan(t *testing.T) {
	plan := clusterScenarios(false, clusterOpts{on: true, rate: 2, lease: 5 * time.Second})
	if len(plan) != 4 || plan[0].n != 6000 || plan[1].proto != "h2" || plan[2].n != 600 || plan[0].rounds != 2 || plan[3].rate != 20 {
		t.Fatalf("%+v", plan)
	}
	q := clusterScenarios(true, clusterOpts{on: true, rate: 2, perInstance: 50, lease: 5 * time.Second})
	if q[0].n != 150 || q[2].n != 15 || q[0].duration != 6*time.Second {
		t.Fatalf("%+v", q)
	}
	for _, bad := range []clusterOpts{{on: true, perInstance: 9000, rate: 1, lease: time.Second}, {on: true, rate: 0, lease: time.Second}, {on: true, rate: 1}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestClusterBudgets(t *testing.T) {
	three := 3
	one := 1
	mk := func(sc, subj string, p50 float64, commands uint64, upstream *int) runResult {
		r := runResult{Scenario: sc, Subject: subj, Round: 1, Streams: 30}
		r.Report = clientReport{Streams: 30, Connected: 30, Delivered: 300, Expected: 300, ReceivedInWindow: 300, WindowSeconds: 10,
			UpstreamStreams: upstream, Latency: latency{Count: 300, P50: p50}, Process: &procReport{CPUSeconds: 3}}
		for range clusterInstances {
			r.Report.Processes = append(r.Report.Processes, &procReport{CPUSeconds: 1, Events: 100})
		}
		r.Report.Redis = &redisReport{CPUSeconds: 0.005} // idle
		if subj == "cluster_redis" {
			r.Report.Redis = &redisReport{CPUSeconds: 0.01, Appends: 20, Commands: commands, ByCommand: map[string]uint64{"xadd": 20}}
		}
		return r
	}
	res := &results{SSEAvailable: true, Runs: []runResult{
		mk("cluster-h1", "cluster_local", 1000, 0, &three), mk("cluster-h1", "cluster_redis", 1500, 200, &one),
		mk("cluster-h2", "cluster_local", 1000, 0, &three), mk("cluster-h2", "cluster_redis", 2500, 200, &one),
		mk("cluster-tenth-h1", "cluster_redis", 900, 120, &one),
	}}
	res.evaluateCluster(clusterScenarios(false, clusterOpts{on: true, rate: 2, lease: 5 * time.Second}))
	want := []string{"PASS", "FAIL", "FAIL"}
	for i, b := range res.Budgets {
		if b.Result != want[i] {
			t.Errorf("%s: %s (%s), want %s", b.Name, b.Result, b.Measured, want[i])
		}
	}
	c := clusterCostOf(res.run("cluster-h1", "cluster_redis"))
	idle := clusterCostOf(res.run("cluster-h1", "cluster_local"))
	if c.perInstance[0] != 10 || c.commandsPerEv != 10 || c.redisUsPerEvent(nil) != 500 || c.redisUsPerEvent(&idle) != 250 {
		t.Errorf("%+v, %v µs per event net of idle", c, c.redisUsPerEvent(&idle))
	}
	md := res.clusterMarkdown()
	if !strings.Contains(md, "| 3 instances, share + store redis | 300 / 300 | 1.50 ms |") || !strings.Contains(md, "**FAIL**") {
		t.Errorf("report:\n%s", md)
	}
	// Sharing across the cluster means one upstream request.
	res.Runs[1].Report.UpstreamStreams = &three
	if p := res.Runs[1].problems(); len(p) != 1 || !strings.Contains(p[0], "not one upstream stream") {
		t.Errorf("problems %v", p)
	}
}
