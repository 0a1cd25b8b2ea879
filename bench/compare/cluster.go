package main

// Cluster mode (-cluster): three Caddy instances sharing one stream on one
// redis-server, against the same three instances sharing in-process (no
// store: one upstream request per instance), in the same run, with the
// clients spread round-robin over the instances. Both subjects use the
// same share key ({http.request.uri}: the instances listen on different
// ports, so the default key, which covers the Host, would differ), the
// same pinning and the same client, so the difference between them is
// what going through Redis costs.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clusterInstances is the number of Caddy instances of a cluster subject.
const clusterInstances = 3

// clusterOpts are the -cluster flags.
type clusterOpts struct {
	on          bool
	perInstance int     // clients per instance; 0: the default
	rate        float64 // events per second of the broadcast
	duration    time.Duration
	rounds      int
	lease       time.Duration
}

func (o clusterOpts) validate() error {
	switch {
	case !o.on:
		return nil
	case o.perInstance < 0 || o.perInstance*clusterInstances > 24_000:
		return fmt.Errorf("-cluster-clients must be in 1..%d", 24_000/clusterInstances)
	case o.rate <= 0 || o.rate > 50:
		return errors.New("-cluster-rate must be in (0, 50]")
	case o.duration < 0 || o.duration > 5*time.Minute:
		return errors.New("-cluster-duration must be at most 5m")
	case o.rounds < 0 || o.rounds > 5:
		return errors.New("-cluster-rounds must be at most 5")
	case o.lease < time.Second || o.lease > time.Minute:
		return errors.New("-cluster-lease must be in [1s, 1m]")
	}
	return nil
}

// withDefaults fills in what the flags left at zero.
func (o clusterOpts) withDefaults(quick bool) clusterOpts {
	pick := func(v, full, q int) int {
		switch {
		case v > 0:
			return v
		case quick:
			return q
		}
		return full
	}
	o.perInstance = pick(o.perInstance, 2000, 200)
	o.rounds = pick(o.rounds, 2, 1)
	if o.duration == 0 {
		o.duration = time.Duration(pick(0, 15, 6)) * time.Second
	}
	return o
}

// clusterInfo describes a cluster run in the results.
type clusterInfo struct {
	Instances    int     `json:"instances"`
	PerInstance  int     `json:"clients_per_instance"`
	Rate         float64 `json:"events_per_second"`
	Lease        string  `json:"lease"`
	Rounds       int     `json:"rounds"`
	RedisVersion string  `json:"redis_version,omitempty"`
}

func (o clusterOpts) describe(quick bool) *clusterInfo {
	o = o.withDefaults(quick)
	return &clusterInfo{Instances: clusterInstances, PerInstance: o.perInstance, Rate: o.rate,
		Lease: o.lease.String(), Rounds: o.rounds}
}

// clusterScenarios is the cluster plan: both subjects over HTTP/1.1 and
// HTTP/2 at full scale, and over HTTP/1.1 at a tenth of the clients, to
// show what Redis does per event does not grow with the clients, once at
// the same rate and once at ten times the rate.
func clusterScenarios(quick bool, o clusterOpts) []scenario {
	o = o.withDefaults(quick)
	both := []string{"cluster_local", "cluster_redis"}
	n := o.perInstance * clusterInstances
	ramp := max(time.Second, time.Duration(n)*time.Millisecond)
	warmup := 3 * time.Second
	if quick {
		warmup = 2 * time.Second
	}
	mk := func(key, title, proto string, n, rounds int, rate float64) scenario {
		return scenario{key: key, kind: "cluster", title: title, proto: proto, subjects: both, n: n, rounds: rounds,
			query: fmt.Sprintf("rate=%g&size=256&mode=broadcast", rate), rate: rate, duration: o.duration,
			ramp: ramp, warmup: warmup, instances: clusterInstances}
	}
	tenth := max(1, o.perInstance/10) * clusterInstances
	return []scenario{
		mk("cluster-h1", "Cluster, HTTP/1.1", "h1", n, o.rounds, o.rate),
		mk("cluster-h2", "Cluster, HTTP/2", "h2", n, o.rounds, o.rate),
		mk("cluster-tenth-h1", "Cluster at a tenth of the clients, HTTP/1.1", "h1", tenth, 1, o.rate),
		// The same events delivered per second as at full scale, from ten
		// times as many appends: Redis's cost per event with its timer work
		// (leases) spread over more events.
		mk("cluster-tenth-fast-h1", "Cluster at a tenth of the clients and ten times the rate, HTTP/1.1", "h1", tenth, 1, 10*o.rate),
	}
}

// clusterHandler is the sse_proxy block of a cluster subject.
func clusterHandler(subject, upstream, redis string, lease time.Duration) string {
	h := "sse_proxy " + upstream + " {\n\t\theartbeat 15s\n\t\tshare {http.request.uri}\n"
	if subject == "cluster_redis" {
		h += fmt.Sprintf("\t\tstore redis %s {\n\t\t\tlease %s\n\t\t}\n", redis, lease)
	}
	return h + "\t}"
}

// clusterCaddyfile renders one instance's Caddyfile: an HTTP/1.1 site on
// ports[0] and a TLS (HTTP/2) site on ports[1], bound to 127.0.0.1.
func clusterCaddyfile(subject string, instance int, ports [2]int, upstream, redis string, lease time.Duration, certFile, keyFile string) string {
	var b strings.Builder
	b.WriteString(globalOptions("h1 h2"))
	handler := clusterHandler(subject, upstream, redis, lease)
	fmt.Fprintf(&b, "\n# %s, instance %d, HTTP/1.1\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", subject, instance, ports[0], handler)
	fmt.Fprintf(&b, "\n# %s, instance %d, HTTP/2\nhttps://127.0.0.1:%d {\n\tbind 127.0.0.1\n\ttls %s %s\n\t%s\n}\n",
		subject, instance, ports[1], certFile, keyFile, handler)
	return b.String()
}

// redisSocket is where the cluster's redis-server listens.
func (b *bench) redisSocket() string { return filepath.Join(b.tmp, "redis", "redis.sock") }

// configureCluster writes each instance's Caddyfile for both subjects and
// checks that Caddy adapts the Redis one.
func (b *bench) configureCluster(res *results) error {
	if !res.SSEAvailable {
		return errors.New("-cluster: this Caddy has no sse_proxy: " + res.SSENote)
	}
	if v, err := b.output(b.redisBin, "--version"); err == nil {
		res.Cluster.RedisVersion = firstLine(v)
	}
	if err := os.MkdirAll(filepath.Dir(b.redisSocket()), 0o700); err != nil {
		return err
	}
	ports, err := freePorts(2 * clusterInstances)
	if err != nil {
		return err
	}
	b.clusterCF = map[string][]string{}
	b.clusterPorts = nil
	for i := range clusterInstances {
		b.clusterPorts = append(b.clusterPorts, [2]int{ports[2*i], ports[2*i+1]})
	}
	for _, subject := range []string{"cluster_local", "cluster_redis"} {
		for i, p := range b.clusterPorts {
			file := filepath.Join(b.tmp, fmt.Sprintf("Caddyfile.%s.%d", subject, i+1))
			cf := clusterCaddyfile(subject, i+1, p, b.upstream, b.redisSocket(), b.cluster.lease, b.certFile, b.keyFile)
			if err := os.WriteFile(file, []byte(cf), 0o644); err != nil {
				return err
			}
			b.clusterCF[subject] = append(b.clusterCF[subject], file)
		}
	}
	out, err := b.output(b.caddyBin, "adapt", "--config", b.clusterCF["cluster_redis"][0], "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, `"handler":"sse_proxy"`) {
		return fmt.Errorf("-cluster: caddy adapt rejects the cluster Caddyfile: %s", lastErrorLine(out))
	}
	return nil
}

// measureCluster runs one cluster scenario against one subject: a fresh
// redis-server and three fresh Caddy processes, stopped after the
// measurement.
func (b *bench) measureCluster(sc scenario, key string) runResult {
	r := runResult{Scenario: sc.key, Subject: key, Proto: sc.proto, Streams: sc.n}
	b.runs++
	// Both subjects get a fresh redis-server on the instances' CPU and have
	// it sampled: unused by the in-process subject, it shows what an idle
	// Redis costs there, which the Redis subject's numbers are net of.
	redis, err := b.startRedis()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer redis.stop(5 * time.Second)
	extra := []string{"-redis", b.redisSocket()}
	var pids []string
	for i, file := range b.clusterCF[key] {
		logf, err := os.Create(filepath.Join(b.tmp, fmt.Sprintf("caddy-%02d-%s-%s-%d.log", b.runs, sc.key, key, i+1)))
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer logf.Close()
		caddy, err := b.ps.start("caddy", 1, b.caddyEnv, logf, logf, b.caddyBin, "run", "--config", file, "--adapter", "caddyfile")
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer caddy.stop(5 * time.Second)
		port := b.clusterPorts[i][0]
		scheme := "http"
		if sc.proto == "h2" {
			port, scheme = b.clusterPorts[i][1], "https"
		}
		if err := waitTCP(b.ctx, caddy, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			r.Err = err.Error() + " (see " + logf.Name() + ")"
			return r
		}
		pids = append(pids, strconv.Itoa(caddy.pid()))
		extra = append(extra, "-url", fmt.Sprintf("%s://127.0.0.1:%d/?%s", scheme, port, sc.query))
	}
	extra = append(extra, "-pid", strings.Join(pids, ","))
	return b.runClient(sc, r, extra...)
}

// startRedis runs a fresh, empty redis-server on CPU 1 (with the
// instances) on a unix socket, without persistence, and waits for PING.
func (b *bench) startRedis() (*proc, error) {
	sock := b.redisSocket()
	_ = os.Remove(sock)
	dir := filepath.Dir(sock)
	p, err := b.ps.start("redis-server", 1, nil, nil, nil, b.redisBin,
		"--save", "", "--appendonly", "no", "--dir", dir, "--port", "0",
		"--unixsocket", sock, "--unixsocketperm", "700",
		"--logfile", filepath.Join(dir, fmt.Sprintf("redis-%02d.log", b.runs)))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := pingRedis(sock)
		if err == nil {
			return p, nil
		}
		if p.exited() || time.Now().After(deadline) || b.ctx.Err() != nil {
			p.stop(time.Second)
			return nil, fmt.Errorf("redis-server not answering on %s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingRedis sends PING over the unix socket and expects +PONG.
func pingRedis(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], []byte("+PONG\r\n")) {
		return fmt.Errorf("answer %q", buf[:n])
	}
	return nil
}
