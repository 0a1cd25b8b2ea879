// Command compare measures, in one run on one machine, an SSE upstream
// directly, Caddy's reverse_proxy in front of it, Caddy's sse_proxy in front
// of it, unshared and with `share` (one Caddy binary, one Caddyfile), and
// nginx if installed, and writes markdown tables, budget verdicts and a
// latency chart to bench/results/.
//
//	go run ./bench/compare              # full run, about 50 minutes
//	go run ./bench/compare -quick       # smoke check, about 10 minutes
//	go run ./bench/compare -only fanout # fan-out at browser scale only, about 35 minutes
//
// See bench/README.md for what each number means.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/selfsigned"
)

// subject is one thing measured.
type subject struct {
	key   string
	label string
	kind  string // direct (the upstream itself), caddy, nginx or cluster (-cluster)
}

// subjects in table order. Caddy subjects get a site per protocol in the
// Caddyfile (handlerBlock; the TLS site serves HTTP/2 and HTTP/3); nginx
// serves HTTP/1.1 and HTTP/2 (no HTTP/3 module in Debian's build).
var subjects = []subject{
	{"direct", "upstream directly", "direct"},
	{"reverse_proxy", "Caddy reverse_proxy", "caddy"},
	{"sse_proxy", "Caddy sse_proxy", "caddy"},
	{"sse_proxy_share", "Caddy sse_proxy (share)", "caddy"},
	{"nginx", "nginx", "nginx"},
	{"cluster_local", "3 instances, share in-process (no store)", "cluster"},
	{"cluster_redis", "3 instances, share + store redis", "cluster"},
}

// subjectKind returns the kind of the subject key.
func subjectKind(key string) string {
	for _, s := range subjects {
		if s.key == key {
			return s.kind
		}
	}
	return ""
}

// scenario is one client run against each of its subjects.
type scenario struct {
	key      string
	kind     string // latency, cost, idle, fanout or cluster: which table shows it
	title    string
	proto    string
	subjects []string
	n        int
	rounds   int    // subjects are measured in turn this many times, alternating order
	query    string // upstream parameters
	rate     float64
	duration time.Duration
	ramp     time.Duration
	warmup   time.Duration
	// instances is the number of Caddy instances a cluster scenario runs;
	// n counts the clients of all of them.
	instances int
	// h2PerConn, over HTTP/2, puts the streams on one connection per this
	// many (sseload -h2-streams-per-conn); 0 packs them.
	h2PerConn int
}

// scenarios returns the full or quick plan.
func scenarios(quick bool) []scenario {
	pick := func(full, q int) int {
		if quick {
			return q
		}
		return full
	}
	sec := func(full, q int) time.Duration { return time.Duration(pick(full, q)) * time.Second }
	// Every client of a scenario asks for the same URL, so with `share` all
	// of them are served from one upstream request; in broadcast mode the
	// upstream sends that request the same events it sends every stream.
	all := []string{"direct", "reverse_proxy", "sse_proxy", "sse_proxy_share", "nginx"}
	h1proxies := []string{"reverse_proxy", "sse_proxy", "sse_proxy_share", "nginx"}
	h2proxies := []string{"reverse_proxy", "sse_proxy", "sse_proxy_share"}
	bn := pick(2000, 400)
	return append([]scenario{
		{key: "latency", kind: "latency", title: "Added latency", proto: "h1", subjects: all, n: 100, rounds: pick(3, 2),
			query: "rate=20&size=256&mode=per-stream", rate: 20,
			duration: sec(10, 4), ramp: sec(1, 1), warmup: sec(2, 1)},
		{key: "broadcast-h1", kind: "cost", title: "Cost per event, HTTP/1.1", proto: "h1", subjects: all, n: bn, rounds: pick(2, 1),
			query: "rate=10&size=256&mode=broadcast", rate: 10,
			duration: sec(15, 8), ramp: sec(4, 1), warmup: sec(3, 2)},
		{key: "broadcast-h2", kind: "cost", title: "Cost per event, HTTP/2", proto: "h2", subjects: h2proxies, n: bn, rounds: pick(2, 1),
			query: "rate=10&size=256&mode=broadcast", rate: 10,
			duration: sec(15, 8), ramp: sec(4, 1), warmup: sec(3, 2)},
		{key: "idle", kind: "idle", title: "Memory per idle stream", proto: "h1", subjects: h1proxies, n: pick(5000, 1000), rounds: 1,
			query:    "rate=0",
			duration: sec(10, 4), ramp: sec(8, 2), warmup: sec(3, 2)},
		// Unshared, 20,000 streams need 20,000 upstream connections in Caddy
		// on top of its client connections: more than the 20,000 open files
		// a process may have here. Shared, over HTTP/2, Caddy holds one
		// upstream connection and ~80 client connections.
		{key: "shared-h2-many", kind: "cost", title: "Shared stream at scale, HTTP/2", proto: "h2", subjects: []string{"sse_proxy_share"},
			n: pick(20000, 4000), rounds: 1,
			query: "rate=1&size=256&mode=broadcast", rate: 1,
			duration: sec(15, 6), ramp: sec(15, 3), warmup: sec(5, 2)},
		// Idle CPU budget: the window (≥30 s) starts after every stream is
		// open and spans two heartbeat intervals.
		{key: "idle-cpu-h2", kind: "idle", title: "Idle CPU", proto: "h2", subjects: []string{"sse_proxy"},
			n: pick(10000, 2000), rounds: 1,
			query:    "rate=0",
			duration: sec(32, 10), ramp: sec(10, 2), warmup: sec(5, 2)},
	}, fanoutScenarios(quick)...)
}

// order returns the subjects of round (from 1): forward in odd rounds,
// backward in even ones, so slow drift in the machine's state does not
// always favour the same subject.
func (sc scenario) order(round int) []string {
	if round%2 == 1 {
		return sc.subjects
	}
	back := slices.Clone(sc.subjects)
	slices.Reverse(back)
	return back
}

// bench is the state of one comparison run.
type bench struct {
	ctx               context.Context
	ps                *procSet
	tmp               string
	caddyBin          string
	loadBin           string
	upstream          string // host:port
	upPID             int
	upProc            *proc
	upRestarts        int            // times the upstream was found stopped and started again
	sites             map[string]int // subject/proto -> port
	caddyfile         string
	caddyEnv          []string
	nginxBin          string // "" when nginx is not measured
	nginxConf         string
	runs              int
	verbose           bool
	keepTmp           bool
	waitQuiet         time.Duration
	only              []string // scenario keys to run; all if empty
	cluster           clusterOpts
	redisBin          string
	certFile, keyFile string
	clusterCF         map[string][]string // cluster subject -> each instance's Caddyfile
	clusterPorts      [][2]int            // each instance's h1 and h2 ports
	// upLifetime bounds the upstream's life (its -lifetime): the run's
	// time limit and a minute, so that it outlives every measurement (the
	// fan-out scenarios take longer than its old fixed 20 minutes) but
	// not the comparison, should the comparison fail to stop it.
	upLifetime time.Duration
	quicNote   string // quic-go's UDP buffer warning, from a Caddy log or an h3 client's output
}

// plan is the list of scenarios this run measures.
func (b *bench) plan(quick bool) []scenario {
	if b.cluster.on {
		return clusterScenarios(quick, b.cluster)
	}
	return scenarios(quick)
}

func main() { os.Exit(run()) }

func run() int {
	quick := flag.Bool("quick", false, "smaller and shorter runs (~10 minutes; -only fanout ~4) for smoke checks")
	out := flag.String("out", "", "results directory (default: bench/results in the module root)")
	caddyBin := flag.String("caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	keep := flag.Bool("keep", false, "keep the temporary directory (logs, Caddyfile, certificates)")
	verbose := flag.Bool("v", false, "print each client report")
	waitQuiet := flag.Duration("wait-quiet", 0, "before measuring, wait up to this long for the machine to be under 15% busy")
	nginxBin := flag.String("nginx", "", "nginx binary to measure (default: nginx from PATH, if any)")
	noNginx := flag.Bool("no-nginx", false, "do not measure nginx")
	only := flag.String("only", "", "run only these scenarios (comma-separated keys, e.g. idle-cpu-h2, or groups: fanout runs every fanout-*); budgets of the others show SKIP")
	var co clusterOpts
	flag.BoolVar(&co.on, "cluster", false, "measure clusters instead: 3 Caddy instances sharing on one redis-server against 3 sharing in-process (see bench/README.md)")
	flag.IntVar(&co.perInstance, "cluster-clients", 0, "with -cluster: clients per instance (default 2000, -quick 200)")
	flag.Float64Var(&co.rate, "cluster-rate", 2, "with -cluster: events per second of the broadcast every client receives")
	flag.DurationVar(&co.duration, "cluster-duration", 0, "with -cluster: measured window (default 15s, -quick 6s)")
	flag.IntVar(&co.rounds, "cluster-rounds", 0, "with -cluster: rounds of each scenario (default 2, -quick 1)")
	flag.DurationVar(&co.lease, "cluster-lease", 5*time.Second, "with -cluster: the redis store's lease")
	redisBin := flag.String("redis-server", "", "with -cluster: redis-server binary (default: from PATH)")
	var po profileOpts
	flag.BoolVar(&po.on, "profile", false, "profile one Caddy instead: CPU, execution trace, heap and goroutines under load, attributed by category (see bench/README.md, Profiles)")
	flag.IntVar(&po.n, "profile-n", 8000, "with -profile: clients")
	flag.StringVar(&po.proto, "profile-proto", "h2", "with -profile: h1, h2 or h3")
	flag.Float64Var(&po.rate, "profile-rate", 2, "with -profile: events per second of the one broadcast every client receives")
	flag.StringVar(&po.subject, "profile-subject", "sse_proxy_share", "with -profile: sse_proxy_share, sse_proxy or reverse_proxy")
	flag.Parse()
	if err := co.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var onlyKeys []string
	if *only != "" {
		onlyKeys = strings.Split(*only, ",")
	}
	limit := 25 * time.Minute
	if *quick {
		limit = 10 * time.Minute
	}
	if est := 2 * plannedTime(scenarios(*quick), onlyKeys); !co.on && est > limit {
		limit = est // the fan-out scenarios alone take about 35 minutes
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

	ps := &procSet{}
	defer ps.stopAll() // every process we started, whatever happens
	b := &bench{ctx: ctx, ps: ps, sites: map[string]int{}, verbose: *verbose, waitQuiet: *waitQuiet, cluster: co,
		upLifetime: limit + time.Minute}
	if po.on {
		return b.profile(po, *out, *caddyBin, *keep)
	}
	if co.on {
		b.redisBin = *redisBin
		if b.redisBin == "" {
			var err error
			if b.redisBin, err = exec.LookPath("redis-server"); err != nil {
				fmt.Fprintln(os.Stderr, "compare: -cluster needs redis-server (Debian: apt-get install redis-server) or -redis-server PATH")
				return 2
			}
		}
		*noNginx = true
	}
	if *only != "" {
		b.only = onlyKeys
		for _, k := range b.only {
			if !slices.ContainsFunc(b.plan(*quick), func(sc scenario) bool { return selected([]string{k}, sc.key) }) {
				fmt.Fprintf(os.Stderr, "compare: -only: no scenario or group %q\n", k)
				return 2
			}
		}
	}
	if !*noNginx {
		b.nginxBin = *nginxBin
		if b.nginxBin == "" {
			b.nginxBin, _ = exec.LookPath("nginx")
		}
	}
	res, err := b.main(*quick, *out, *caddyBin, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		return 1
	}
	if res.anyFail {
		return 1
	}
	return 0
}

func (b *bench) main(quick bool, out, caddyBin string, keep bool) (*results, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if out == "" {
		out = filepath.Join(root, "bench", "results")
	}
	if b.tmp, err = os.MkdirTemp("", "sse-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if keep || b.keepTmp {
			fmt.Fprintln(os.Stderr, "compare: logs, Caddyfile and certificate kept in", b.tmp)
			return
		}
		os.RemoveAll(b.tmp)
	}()
	res := &results{Quick: quick, Started: time.Now(), Env: environment(), Only: b.only}

	// Pin Caddy to CPU 1 and the load (upstream + client) to CPU 0.
	if runtime.NumCPU() < 2 {
		res.Pinning = "not pinned: fewer than 2 CPUs"
	} else if _, err := exec.LookPath("taskset"); err != nil {
		res.Pinning = "not pinned: taskset not found"
	} else {
		b.ps.pin = true
		res.Pinning = "Caddy pinned to CPU 1; upstream and client pinned to CPU 0 (taskset)"
	}

	if err := b.build(root, caddyBin); err != nil {
		return nil, err
	}
	version, _ := b.output(b.caddyBin, "version")
	res.CaddyVersion = firstLine(version)
	if err := b.configure(res); err != nil {
		return nil, err
	}
	if b.cluster.on {
		res.Cluster = b.cluster.describe(quick)
		if b.ps.pin {
			res.Pinning = "the 3 Caddy instances and redis-server pinned to CPU 1; upstream and client pinned to CPU 0 (taskset)"
		}
		if err := b.configureCluster(res); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(os.Stderr, "compare:", res.Pinning)
	if err := b.startUpstream(); err != nil {
		return nil, err
	}
	res.BusyAtStart = machineBusy(b.ctx)
	for deadline := time.Now().Add(b.waitQuiet); res.BusyAtStart > 15 && time.Now().Before(deadline); {
		fmt.Fprintf(os.Stderr, "compare: machine %.0f%% busy; waiting for it to calm down\n", res.BusyAtStart)
		if !sleepCtx(b.ctx, 4*time.Second) {
			break
		}
		res.BusyAtStart = machineBusy(b.ctx)
	}
	fmt.Fprintf(os.Stderr, "compare: machine busy before measuring: %.0f%% of all CPUs\n", res.BusyAtStart)

	for _, sc := range b.plan(quick) {
		if !selected(b.only, sc.key) {
			continue
		}
		for round := 1; round <= sc.rounds; round++ {
			for _, key := range sc.order(round) {
				if !b.serves(key, sc.proto) {
					continue
				}
				if err := b.ctx.Err(); err != nil {
					return nil, fmt.Errorf("stopped: %w", context.Cause(b.ctx))
				}
				if err := b.ensureUpstream(); err != nil {
					return nil, err
				}
				var r runResult
				if sc.instances > 0 {
					r = b.measureCluster(sc, key)
				} else {
					r = b.measure(sc, key)
				}
				r.Round = round
				res.Runs = append(res.Runs, r)
				if len(r.problems()) > 0 {
					b.keepTmp = true // keep the logs for a look at what went wrong
				}
				fmt.Fprintf(os.Stderr, "compare: %-12s #%d %-14s %s\n", sc.key, round, key, r.oneLine())
			}
		}
	}
	res.Finished = time.Now()
	res.BusyAtEnd = machineBusy(b.ctx)
	res.QUICNote = b.quicNote
	res.UpstreamRestarts = b.upRestarts
	if b.cluster.on {
		res.evaluateCluster(b.plan(quick))
		if err := res.writeCluster(out); err != nil {
			return nil, err
		}
		fmt.Print(res.clusterMarkdown())
		fmt.Fprintf(os.Stderr, "compare: wrote %s and %s\n", filepath.Join(out, "cluster.md"), filepath.Join(out, "cluster.json"))
		return res, nil
	}
	res.evaluate(scenarios(quick))
	if err := res.write(out); err != nil {
		return nil, err
	}
	fmt.Print(res.markdown())
	fmt.Fprintf(os.Stderr, "compare: wrote %s, %s and %s\n",
		filepath.Join(out, "latest.md"), filepath.Join(out, "latest.json"), filepath.Join(out, "latency.svg"))
	return res, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	outb, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(outb))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run this from inside the module")
	}
	return filepath.Dir(gomod), nil
}

// build compiles Caddy (unless given) and sseload into the temporary directory.
func (b *bench) build(root, caddyBin string) error {
	b.loadBin = filepath.Join(b.tmp, "sseload")
	targets := [][2]string{{"./cmd/sseload", b.loadBin}}
	if caddyBin != "" {
		b.caddyBin = caddyBin
	} else {
		b.caddyBin = filepath.Join(b.tmp, "caddy")
		targets = append(targets, [2]string{"./cmd/caddy", b.caddyBin})
	}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "compare: go build -o %s %s\n", t[1], t[0])
		cmd := exec.CommandContext(b.ctx, "go", "build", "-o", t[1], t[0])
		cmd.Dir = root
		if outb, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", t[0], err, outb)
		}
	}
	return nil
}

// output runs a short command and returns its combined output.
func (b *bench) output(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), b.caddyEnv...)
	outb, err := cmd.CombinedOutput()
	return string(outb), err
}

// configure picks ports, writes the certificate and the Caddyfile, and checks
// whether this Caddy binary knows sse_proxy.
func (b *bench) configure(res *results) error {
	home := filepath.Join(b.tmp, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return err
	}
	// Keep Caddy's storage and config autosave out of the real home directory.
	b.caddyEnv = []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	certFile, keyFile, err := selfsigned.Write(b.tmp)
	if err != nil {
		return err
	}
	b.certFile, b.keyFile = certFile, keyFile
	ports, err := freePorts(len(subjects)*2 + 2)
	if err != nil {
		return err
	}
	b.upstream = fmt.Sprintf("127.0.0.1:%d", ports[0])
	var sites []site
	i := 1
	for _, s := range subjects {
		if s.kind != "caddy" {
			continue
		}
		for _, proto := range []string{"h1", "h2"} {
			sites = append(sites, site{subject: s.key, proto: proto, port: ports[i]})
			i++
		}
	}
	write := func(ss []site) error {
		b.caddyfile = filepath.Join(b.tmp, "Caddyfile")
		return os.WriteFile(b.caddyfile, []byte(caddyfile(ss, b.upstream, certFile, keyFile)), 0o644)
	}
	if err := write(sites); err != nil {
		return err
	}
	out, err := b.output(b.caddyBin, "adapt", "--config", b.caddyfile, "--adapter", "caddyfile")
	switch {
	case err == nil && strings.Contains(out, `"handler":"sse_proxy"`):
		res.SSEAvailable = true
	case err == nil:
		res.SSENote = "sse_proxy not measured: `caddy adapt` produced no sse_proxy handler"
	default:
		res.SSENote = "sse_proxy not measured: `caddy adapt` rejects it: " + lastErrorLine(out)
	}
	if !res.SSEAvailable {
		fmt.Fprintln(os.Stderr, "compare:", res.SSENote)
		var kept []site
		for _, s := range sites {
			if !strings.HasPrefix(s.subject, "sse_proxy") {
				kept = append(kept, s)
			}
		}
		sites = kept
		if err := write(sites); err != nil {
			return err
		}
	}
	for _, s := range sites {
		b.sites[s.subject+"/"+s.proto] = s.port
		if s.proto == "h2" {
			b.sites[s.subject+"/h3"] = s.port // the same site, over UDP
		}
	}
	return b.configureNginx(res, ports[i], ports[i+1])
}

// configureNginx writes nginx's config for an HTTP/1.1 site on port and an
// HTTP/2 one (TLS) on h2port and checks it with nginx -t. Without nginx, or
// if the check fails, nginx is not measured and the report says why.
// nginx is not measured over HTTP/3; the report says so too.
func (b *bench) configureNginx(res *results, port, h2port int) error {
	if b.nginxBin == "" {
		res.NginxNote = "nginx not measured: not installed (or -no-nginx)"
		return nil
	}
	prefix := filepath.Join(b.tmp, "nginx")
	for _, d := range []string{"", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
			return err
		}
	}
	b.nginxConf = filepath.Join(prefix, "nginx.conf")
	v, _ := b.output(b.nginxBin, "-V")
	version := strings.TrimPrefix(firstLine(v), "nginx version: ")
	conf := nginxConfig(prefix, port, b.upstream, h2port, b.certFile, b.keyFile, version)
	if err := os.WriteFile(b.nginxConf, []byte(conf), 0o644); err != nil {
		return err
	}
	out, err := b.output(b.nginxBin, b.nginxArgs("-t")...)
	if err != nil {
		res.NginxNote = "nginx not measured: `nginx -t` rejects the config: " + lastErrorLine(out)
		fmt.Fprintln(os.Stderr, "compare:", res.NginxNote)
		b.nginxBin = ""
		return nil
	}
	res.NginxVersion = version
	res.NginxH3Note = "nginx: no HTTP/3 module in this build"
	if strings.Contains(v, "--with-http_v3_module") {
		res.NginxH3Note = "nginx: has an HTTP/3 module, but this tool does not configure HTTP/3 for it yet"
	}
	b.sites["nginx/h1"] = port
	b.sites["nginx/h2"] = h2port
	return nil
}

// nginxArgs runs nginx on the benchmark's config, with its prefix and
// startup error log in the temporary directory.
func (b *bench) nginxArgs(extra ...string) []string {
	prefix := filepath.Dir(b.nginxConf)
	return append([]string{"-p", prefix + "/", "-c", b.nginxConf, "-e", filepath.Join(prefix, "logs", "error.log")}, extra...)
}

// serves reports whether subject key can be measured over proto.
func (b *bench) serves(key, proto string) bool {
	switch subjectKind(key) {
	case "direct":
		return true
	case "cluster":
		return len(b.clusterCF[key]) == clusterInstances
	}
	_, ok := b.sites[key+"/"+proto]
	return ok
}

// startUpstream starts the SSE upstream on CPU 0 and waits until it answers.
func (b *bench) startUpstream() error {
	name := "upstream.log"
	if b.upRestarts > 0 {
		name = fmt.Sprintf("upstream-%d.log", b.upRestarts)
	}
	logf, err := os.Create(filepath.Join(b.tmp, name))
	if err != nil {
		return err
	}
	p, err := b.ps.start("upstream", 0, nil, logf, logf, b.loadBin,
		"upstream", "-listen", b.upstream, "-lifetime", b.upLifetime.String())
	if err != nil {
		return err
	}
	b.upPID, b.upProc = p.pid(), p
	return waitHTTP(b.ctx, p, "http://"+b.upstream+"/healthz", 10*time.Second)
}

// ensureUpstream starts the upstream again, on the same address, if it has
// exited: something outside the comparison stopped it. The report counts it.
func (b *bench) ensureUpstream() error {
	if b.upProc == nil || !b.upProc.exited() {
		return nil
	}
	b.upRestarts++
	fmt.Fprintf(os.Stderr, "compare: the upstream exited (%v); starting it again\n", b.upProc.err)
	return b.startUpstream()
}

// measure runs one scenario against one subject, with a fresh Caddy process
// for proxied subjects so that no run inherits another's heap.
func (b *bench) measure(sc scenario, key string) runResult {
	r := runResult{Scenario: sc.key, Subject: key, Proto: sc.proto, Streams: sc.n}
	if why := fdShortfall(sc, key, openFileLimit()); why != "" {
		r.Skipped = why
		return r
	}
	scheme := "http"
	if sc.proto == "h2" || sc.proto == "h3" {
		scheme = "https"
	}
	target, pid := "http://"+b.upstream, b.upPID
	var caddyLog string
	if subjectKind(key) == "nginx" {
		port, ok := b.sites[key+"/"+sc.proto]
		if !ok {
			r.Err = "no nginx site over " + sc.proto
			return r
		}
		target = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		b.runs++
		logf, err := os.Create(filepath.Join(b.tmp, fmt.Sprintf("nginx-%02d-%s.log", b.runs, sc.key)))
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer logf.Close()
		// daemon off, master_process off: one process that does all the
		// work, so its CPU and PSS are nginx's whole cost.
		ng, err := b.ps.start("nginx", 1, nil, logf, logf, b.nginxBin, b.nginxArgs()...)
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer ng.stop(5 * time.Second)
		if err := waitTCP(b.ctx, ng, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			r.Err = err.Error() + " (see " + logf.Name() + ")"
			return r
		}
		pid = ng.pid()
	} else if key != "direct" {
		port, ok := b.sites[key+"/"+sc.proto]
		if !ok {
			r.Err = "no site for " + key + " over " + sc.proto
			return r
		}
		target = fmt.Sprintf("%s://127.0.0.1:%d", scheme, port)
		b.runs++
		logf, err := os.Create(filepath.Join(b.tmp, fmt.Sprintf("caddy-%02d-%s-%s.log", b.runs, sc.key, key)))
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer logf.Close()
		caddyLog = logf.Name()
		caddy, err := b.ps.start("caddy", 1, b.caddyEnv, logf, logf, b.caddyBin,
			"run", "--config", b.caddyfile, "--adapter", "caddyfile")
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer caddy.stop(5 * time.Second)
		if err := waitTCP(b.ctx, caddy, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
			r.Err = err.Error() + " (see " + logf.Name() + ")"
			return r
		}
		pid = caddy.pid()
	}
	extra := []string{"-url", target + "/?" + sc.query, "-pid", strconv.Itoa(pid)}
	if sc.h2PerConn > 0 {
		extra = append(extra, "-h2-streams-per-conn", strconv.Itoa(sc.h2PerConn))
	}
	r = b.runClient(sc, r, extra...)
	if sc.proto == "h3" && caddyLog != "" {
		if data, err := os.ReadFile(caddyLog); err == nil {
			b.noteQUICWarning("Caddy's log", string(data))
		}
	}
	return r
}

// runClient runs sseload client for scenario sc with extra arguments (the
// URLs, the processes to sample) and reads its report into r.
func (b *bench) runClient(sc scenario, r runResult, extra ...string) runResult {
	args := append([]string{"client", "-n", strconv.Itoa(sc.n),
		"-proto", sc.proto, "-insecure", "-json",
		"-duration", sc.duration.String(), "-ramp", sc.ramp.String(), "-warmup", sc.warmup.String(),
		"-upstream-health", "http://" + b.upstream + "/healthz"}, extra...)
	var stdout, stderr bytes.Buffer
	client, err := b.ps.start("client", 0, nil, &stdout, &stderr, b.loadBin, args...)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	budget := sc.ramp + sc.warmup + sc.duration + 90*time.Second
	waitErr := make(chan error, 1)
	go func() { waitErr <- client.wait(budget) }()
	select {
	case err = <-waitErr:
	case <-b.ctx.Done():
		client.stop(2 * time.Second)
		err = context.Cause(b.ctx)
	}
	if sc.proto == "h3" {
		b.noteQUICWarning("sseload client", stderr.String())
	}
	if err != nil {
		r.Err = fmt.Sprintf("client: %v: %s", err, strings.TrimSpace(stderr.String()))
		return r
	}
	r.Raw = json.RawMessage(bytes.TrimSpace(stdout.Bytes()))
	if err := json.Unmarshal(stdout.Bytes(), &r.Report); err != nil {
		r.Err = "client output: " + err.Error()
	}
	if b.verbose {
		fmt.Fprintf(os.Stderr, "%s\n", stdout.Bytes())
	}
	return r
}

// waitHTTP polls url until it answers 200, p exits, or timeout.
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", p.name, timeout)
}

// waitTCP polls addr until it accepts connections, p exits, or timeout.
func waitTCP(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening on %s after %s", p.name, addr, timeout)
}

// environment describes the machine for the results.
func environment() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	l := strings.Fields(string(load))
	loadStr := "unknown"
	if len(l) >= 3 {
		loadStr = strings.Join(l[:3], " ")
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s; load average at start %s",
		runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.Version(), loadStr)
}

// machineBusy returns how busy all CPUs were over one second, in percent,
// from /proc/stat. Measured while nothing of ours is working, it tells
// whether other work on the machine disturbs the numbers.
func machineBusy(ctx context.Context) float64 {
	read := func() (busy, total uint64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		f := strings.Fields(firstLine(string(b))) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total
	}
	b0, t0 := read()
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(time.Second):
	}
	b1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return float64(b1-b0) / float64(t1-t0) * 100
}

// sleepCtx sleeps for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// lastErrorLine picks the line of Caddy's output that carries the error,
// and from a JSON log line its message.
func lastErrorLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "Error") || strings.Contains(lines[i], "error") {
			var entry struct{ Msg string }
			if json.Unmarshal([]byte(lines[i]), &entry) == nil && entry.Msg != "" {
				return entry.Msg
			}
			return lines[i]
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return "no output"
}
