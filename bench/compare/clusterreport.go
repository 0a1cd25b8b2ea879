package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// clusterCost is a cluster subject's cost over the rounds combined.
type clusterCost struct {
	perInstance []float64 // CPU s per 1,000 events each instance delivered, by instance
	cpuPercent  float64   // the instances' CPU together, % of one core (median over rounds)
	pssPerConn  float64   // the instances' PSS growth together per client stream (median)

	redis          bool
	redisPercent   float64 // % of one core (median over rounds)
	redisCPU       float64 // CPU seconds inside the windows, summed
	window         float64 // seconds of the windows, summed
	appends        uint64
	commandsPerEv  float64 // Redis commands per event appended, all instances together
	appendsPerSec  float64
	commandsPerSec float64
	commandsByName map[string]float64 // per event appended
}

// clusterCostOf combines the rounds res.run used for r.
func clusterCostOf(r *runResult) clusterCost {
	var c clusterCost
	cpu := make([]float64, clusterInstances)
	events := make([]uint64, clusterInstances)
	var pct, pss, rpct []float64
	var commands uint64
	byName := map[string]uint64{}
	for _, u := range r.usedRuns {
		rep := &u.Report
		for k, p := range rep.Processes {
			if k < clusterInstances {
				cpu[k] += p.CPUSeconds
				events[k] += p.Events
			}
		}
		if p := rep.Process; p != nil {
			pct, pss = append(pct, p.CPUPercent), append(pss, p.PSSPerStreamKiB)
		}
		if rd := rep.Redis; rd != nil {
			c.redis = true
			rpct = append(rpct, rd.CPUPercent)
			c.redisCPU += rd.CPUSeconds
			c.appends += rd.Appends
			commands += rd.Commands
			c.window += rep.WindowSeconds
			for n, v := range rd.ByCommand {
				byName[n] += v
			}
		}
	}
	for k := range cpu {
		v := 0.0
		if events[k] > 0 {
			v = cpu[k] / float64(events[k]) * 1000
		}
		c.perInstance = append(c.perInstance, v)
	}
	if len(pct) > 0 {
		c.cpuPercent, c.pssPerConn = median(pct), median(pss)
	}
	if c.redis {
		c.redisPercent = median(rpct)
		if c.window > 0 {
			c.appendsPerSec = float64(c.appends) / c.window
			c.commandsPerSec = float64(commands) / c.window
		}
		c.commandsByName = map[string]float64{}
		if c.appends > 0 {
			c.commandsPerEv = float64(commands) / float64(c.appends)
			for n, v := range byName {
				c.commandsByName[n] = float64(v) / float64(c.appends)
			}
		}
	}
	return c
}

// redisUsPerEvent is Redis's CPU per event appended, in µs, net of what
// an idle Redis spent in the same time (idle: the in-process subject's
// unused Redis); 0 without appends.
func (c clusterCost) redisUsPerEvent(idle *clusterCost) float64 {
	if c.appends == 0 {
		return 0
	}
	cpu := c.redisCPU
	if idle != nil && idle.window > 0 {
		cpu -= idle.redisCPU / idle.window * c.window
	}
	return cpu / float64(c.appends) * 1e6
}

// evaluateCluster checks the cluster budgets: added p50 over in-process
// sharing ≤ 1 ms per protocol, and Redis commands per event at full scale
// no more than 10% over those at a tenth of the clients.
func (res *results) evaluateCluster(plan []scenario) {
	res.plan = plan
	for _, sc := range []string{"cluster-h1", "cluster-h2"} {
		local, redis := res.run(sc, "cluster_local"), res.run(sc, "cluster_redis")
		res.check("cluster: added p50 over in-process sharing ≤ 1 ms ("+protoName(sc)+")", "", []*runResult{local, redis},
			func() (float64, float64) { return redis.Report.Latency.P50 - local.Report.Latency.P50, 1000 }, fmtUs)
	}
	full, tenth := res.run("cluster-h1", "cluster_redis"), res.run("cluster-tenth-h1", "cluster_redis")
	res.check("cluster: Redis commands per event independent of the clients (full scale ≤ 1.1× a tenth of the clients)", "",
		[]*runResult{full, tenth}, func() (float64, float64) {
			return clusterCostOf(full).commandsPerEv, 1.1 * clusterCostOf(tenth).commandsPerEv
		}, func(v float64) string { return fmt.Sprintf("%.2f commands/event", v) })
}

// writeCluster stores cluster.md and cluster.json in dir.
func (res *results) writeCluster(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cluster.md"), []byte(res.clusterMarkdown()), 0o644)
}

// clusterMarkdown renders the cluster report.
func (res *results) clusterMarkdown() string {
	var b strings.Builder
	ci := res.Cluster
	if ci == nil {
		ci = &clusterInfo{}
	}
	res.head(&b, "sse_proxy clusters on Redis", "clients")
	fmt.Fprintf(&b, "- Caddy: %s, built from this repository's cmd/caddy; %d instances per subject, each a fresh process per measurement with an HTTP/1.1 and a TLS (HTTP/2) site, `sse_proxy { heartbeat 15s; share {http.request.uri} }`, and for the Redis subject `store redis <unix socket> { lease %s }`\n",
		res.CaddyVersion, ci.Instances, ci.Lease)
	fmt.Fprintf(&b, "- Redis: %s, a fresh empty process per measurement (unix socket, `--save \"\" --appendonly no`)\n", orDash(ci.RedisVersion))
	fmt.Fprintf(&b, "- Load: `sseload upstream` (HTTP/1.1), one broadcast of %g events/s, 256 B; `sseload client` spreads its streams round-robin over the instances (%d per instance at full scale); latency = receive time − send time stamped in the event, same clock\n",
		ci.Rate, ci.PerInstance)
	b.WriteString("- In-process sharing: the same 3 instances without a store, each reading the upstream for its own clients (3 upstream requests); with Redis: one upstream request for the cluster\n\n")

	for _, sc := range res.plan {
		res.clusterTable(&b, sc)
	}

	res.budgetsAndProblems(&b, "Failover (within lease + 1 s) is not measured here; see the `cluster/` tests (`TestClusterHolderKilled`).\n\n")
	return b.String()
}

// clusterTable renders one cluster scenario: latency against in-process
// sharing, the instances' cost per event each, and what Redis did.
func (res *results) clusterTable(b *strings.Builder, sc scenario) {
	res.header(b, sc, fmt.Sprintf("%d instances × %d clients, one broadcast of %g events/s (%.0f events/s delivered), 256 B",
		sc.instances, sc.n/max(1, sc.instances), sc.rate, sc.rate*float64(sc.n)))
	b.WriteString("| subject | delivered / expected | p50 | p99 | p99 range over rounds | added p50 | added p99 | CPU s per 1k events, per instance | instances' CPU (% of a core, together) | PSS Δ per client | Redis CPU (% of a core) | Redis CPU per event, net of idle | Redis commands per event (per instance) | upstream streams |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	local := res.run(sc.key, "cluster_local")
	var idle *clusterCost
	if local != nil && local.used > 0 {
		c := clusterCostOf(local)
		idle = &c
	}
	var cmds []string
	for _, key := range sc.subjects {
		r := res.run(sc.key, key)
		if r == nil {
			continue
		}
		if r.Err != "" || r.Report.Process == nil {
			fmt.Fprintf(b, "| %s | error: %s |||||||||||||\n", label(key), r.Err)
			continue
		}
		c := clusterCostOf(r)
		l := r.Report.Latency
		addP50, addP99 := "—", "—"
		if local != nil && local.Err == "" && key != "cluster_local" {
			addP50, addP99 = fmtUs(l.P50-local.Report.Latency.P50), fmtUs(l.P99-local.Report.Latency.P99)
		}
		per := make([]string, len(c.perInstance))
		for k, v := range c.perInstance {
			per[k] = fmt.Sprintf("%.4f", v)
		}
		rcpu, rus, rcmd := "—", "—", "—"
		if c.redis {
			rcpu = fmt.Sprintf("%.2f%%", c.redisPercent)
			if key == "cluster_local" {
				rcpu += " (idle)"
			}
		}
		if c.appends > 0 {
			rus = fmt.Sprintf("%.0f µs", c.redisUsPerEvent(idle))
			rcmd = fmt.Sprintf("%.2f (%.2f)", c.commandsPerEv, c.commandsPerEv/float64(sc.instances))
			names := slices.Sorted(maps.Keys(c.commandsByName))
			parts := make([]string, 0, len(names))
			for _, n := range names {
				parts = append(parts, fmt.Sprintf("%s %.2f", n, c.commandsByName[n]))
			}
			cmds = append(cmds, fmt.Sprintf("%s: %.1f events appended/s, %.1f commands/s; per event: %s",
				label(key), c.appendsPerSec, c.commandsPerSec, strings.Join(parts, ", ")))
		}
		fmt.Fprintf(b, "| %s | %d / %d | %s | %s | %s – %s | %s | %s | %s | %.0f%% | %s | %s | %s | %s | %s |\n", rowLabel(r),
			r.Report.Delivered, r.Report.Expected, fmtUs(l.P50), fmtUs(l.P99), fmtUs(r.p99Range[0]), fmtUs(r.p99Range[1]),
			addP50, addP99, strings.Join(per, " / "), c.cpuPercent, fmtKiB(c.pssPerConn), rcpu, rus, rcmd, fmtCount(r.Report.UpstreamStreams))
	}
	b.WriteString("\n")
	for _, s := range cmds {
		fmt.Fprintf(b, "Redis commands (a script's commands counted under their own names, besides its EVALSHA) — %s\n\n", s)
	}
}
