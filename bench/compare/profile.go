package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/sse-proxy/caddy-sse-proxy/internal/selfsigned"
)

// profileOpts are the -profile flags: one Caddy with its admin endpoint on,
// profiled while n clients of one broadcast receive rate events/s.
type profileOpts struct {
	on      bool
	n       int
	proto   string
	rate    float64
	subject string
}

// The profile run's client schedule and what is fetched when, counted from
// the window's start (the client opens the streams over profileRamp, waits
// profileWarmup, then measures profileWindow).
const (
	profileRamp   = 15 * time.Second
	profileWarmup = 5 * time.Second
	profileWindow = 20 * time.Second
	cpuAt         = 1 * time.Second // CPU profile: 10 s from here
	cpuSeconds    = 10
	traceAt       = 11500 * time.Millisecond // execution trace: 3 s from here
	traceSeconds  = 3
	memAt         = 15 * time.Second // goroutines, then heap (forced GC), MemStats and PSS
)

// validate checks the flags.
func (o profileOpts) validate() error {
	switch {
	case o.n < 1 || o.n > 25000:
		return errors.New("-profile-n must be in 1..25000")
	case o.proto != "h1" && o.proto != "h2" && o.proto != "h3":
		return fmt.Errorf("-profile-proto must be h1, h2 or h3, not %q", o.proto)
	case o.rate <= 0 || o.rate > 1000:
		return errors.New("-profile-rate must be in (0, 1000]")
	case o.subject != "sse_proxy_share" && o.subject != "reverse_proxy" && o.subject != "sse_proxy":
		return fmt.Errorf("-profile-subject must be sse_proxy_share, sse_proxy or reverse_proxy, not %q", o.subject)
	}
	return nil
}

// dirName is the results directory of this profile.
func (o profileOpts) dirName() string {
	return fmt.Sprintf("profile-%s-%s-%d", o.subject, o.proto, o.n)
}

// profileGlobalOptions mirror globalOptions (caddyfile.go) but keep the
// admin endpoint, on a loopback port, for /debug/pprof, and serve HTTP/3 too.
const profileGlobalOptions = `{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	servers {
		protocols h1 h2 h3
	}
	log {
		level WARN
	}
}
`

// profileCaddyfile renders the profile's Caddyfile: the subject's handler
// (handlerBlock, as in the comparison) on a plain HTTP/1.1 site and on a TLS
// site that speaks HTTP/2 and HTTP/3.
func profileCaddyfile(subject, upstream string, adminPort, h1Port, tlsPort int, certFile, keyFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, profileGlobalOptions, adminPort)
	h := handlerBlock(subject, upstream)
	fmt.Fprintf(&b, "\n# %s over HTTP/1.1\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n\t%s\n}\n", subject, h1Port, h)
	fmt.Fprintf(&b, "\n# %s over TLS: HTTP/2 (ALPN) and HTTP/3\nhttps://127.0.0.1:%d {\n\tbind 127.0.0.1\n\ttls %s %s\n\t%s\n}\n",
		subject, tlsPort, certFile, keyFile, h)
	return b.String()
}

// profileRun is the state of one -profile run.
type profileRun struct {
	b       *bench
	o       profileOpts
	dir     string // results directory
	admin   string // http://127.0.0.1:port
	pid     int    // Caddy's
	notes   []string
	started time.Time
}

// profile runs the -profile mode and returns the exit code.
func (b *bench) profile(o profileOpts, out, caddyBin string, keep bool) int {
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		return 2
	}
	summary, err := b.profileMain(o, out, caddyBin, keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare: profile:", err)
		return 1
	}
	fmt.Print(summary)
	return 0
}

func (b *bench) profileMain(o profileOpts, out, caddyBin string, keep bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	if out == "" {
		out = filepath.Join(root, "bench", "results")
	}
	pr := &profileRun{b: b, o: o, dir: filepath.Join(out, o.dirName()), started: time.Now()}
	if err := os.MkdirAll(pr.dir, 0o755); err != nil {
		return "", err
	}
	if b.tmp, err = os.MkdirTemp("", "sse-profile-"); err != nil {
		return "", err
	}
	defer func() {
		if keep {
			fmt.Fprintln(os.Stderr, "compare: logs and certificate kept in", b.tmp)
			return
		}
		os.RemoveAll(b.tmp)
	}()
	pinning := "not pinned: fewer than 2 CPUs"
	if runtime.NumCPU() >= 2 {
		if _, err := exec.LookPath("taskset"); err != nil {
			pinning = "not pinned: taskset not found"
		} else {
			b.ps.pin = true
			pinning = "Caddy pinned to CPU 1; upstream and client pinned to CPU 0 (taskset)"
		}
	}
	if err := b.build(root, caddyBin); err != nil {
		return "", err
	}
	if caddyBin == "" {
		// Keep the profiled binary next to its profiles for `go tool pprof`.
		kept := filepath.Join(pr.dir, "caddy")
		if err := profCopyFile(b.caddyBin, kept); err != nil {
			return "", err
		}
		b.caddyBin = kept
	}
	version, _ := b.output(b.caddyBin, "version")

	home := filepath.Join(b.tmp, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", err
	}
	b.caddyEnv = []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	certFile, keyFile, err := selfsigned.Write(b.tmp)
	if err != nil {
		return "", err
	}
	ports, err := freePorts(4)
	if err != nil {
		return "", err
	}
	b.upstream = fmt.Sprintf("127.0.0.1:%d", ports[0])
	pr.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	h1Port, tlsPort := ports[2], ports[3]
	b.caddyfile = filepath.Join(pr.dir, "Caddyfile")
	cf := profileCaddyfile(o.subject, b.upstream, ports[1], h1Port, tlsPort, certFile, keyFile)
	if err := os.WriteFile(b.caddyfile, []byte(cf), 0o644); err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "compare:", pinning)
	if err := b.startUpstream(); err != nil {
		return "", err
	}
	busyBefore := machineBusy(b.ctx)

	logf, err := os.Create(filepath.Join(pr.dir, "caddy.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	caddy, err := b.ps.start("caddy", 1, b.caddyEnv, logf, logf, b.caddyBin, "run", "--config", b.caddyfile, "--adapter", "caddyfile")
	if err != nil {
		return "", err
	}
	defer caddy.stop(5 * time.Second)
	port := tlsPort
	if o.proto == "h1" {
		port = h1Port
	}
	if err := waitTCP(b.ctx, caddy, fmt.Sprintf("127.0.0.1:%d", port), 20*time.Second); err != nil {
		return "", fmt.Errorf("%w (see %s)", err, logf.Name())
	}
	if err := waitHTTP(b.ctx, caddy, pr.admin+"/debug/pprof/", 10*time.Second); err != nil {
		return "", fmt.Errorf("admin endpoint: %w (see %s)", err, logf.Name())
	}
	pr.pid = caddy.pid()

	// Before the clients: the baseline every per-client number is net of.
	if !sleepCtx(b.ctx, time.Second) {
		return "", context.Cause(b.ctx)
	}
	baseMem := pr.memory("base")

	scheme := "https"
	if o.proto == "h1" {
		scheme = "http"
	}
	sc := scenario{key: "profile", kind: "cost", proto: o.proto, subjects: []string{o.subject}, n: o.n, rounds: 1,
		query: fmt.Sprintf("rate=%s&size=200&mode=broadcast", strconv.FormatFloat(o.rate, 'f', -1, 64)), rate: o.rate,
		duration: profileWindow, ramp: profileRamp, warmup: profileWarmup}
	url := fmt.Sprintf("%s://127.0.0.1:%d/?%s", scheme, port, sc.query)
	fmt.Fprintf(os.Stderr, "compare: profile: %d %s clients of %s (ramp %s, warm-up %s, window %s)\n",
		o.n, o.proto, url, sc.ramp, sc.warmup, sc.duration)
	t0 := time.Now()
	clientDone := make(chan runResult, 1)
	go func() { // owned by profileMain, which always receives its result below
		clientDone <- b.runClient(sc, runResult{Scenario: sc.key, Subject: o.subject, Proto: o.proto, Streams: o.n},
			"-url", url, "-pid", strconv.Itoa(pr.pid))
	}()
	windowStart := t0.Add(sc.ramp + sc.warmup)
	pr.during(windowStart)
	mem := pr.memory("")
	r := <-clientDone
	busyAfter := machineBusy(b.ctx)
	if r.Raw != nil {
		_ = os.WriteFile(filepath.Join(pr.dir, "sseload.json"), append(r.Raw, '\n'), 0o644)
	}
	caddy.stop(5 * time.Second)

	var s strings.Builder
	fmt.Fprintf(&s, "# Profile: %s over %s, %d clients of one broadcast at %s events/s\n\n",
		o.subject, profProtoName(o.proto), o.n, strconv.FormatFloat(o.rate, 'f', -1, 64))
	fmt.Fprintf(&s, "`go run ./bench/compare -profile -profile-n %d -profile-proto %s -profile-rate %s -profile-subject %s`, %s, %s.\n\n",
		o.n, o.proto, strconv.FormatFloat(o.rate, 'f', -1, 64), o.subject, pr.started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(pr.started).Round(time.Second))
	fmt.Fprintf(&s, "- Machine: %s; all CPUs %.0f%% busy before the run and %.0f%% after.\n", environment(), busyBefore, busyAfter)
	fmt.Fprintf(&s, "- %s; %s; Caddy %s, GOGC and GOMAXPROCS unset (Go's defaults: GOGC 100, GOMAXPROCS = the CPUs Caddy may run on).\n",
		pinning, profProtoNote(o.proto), firstLine(version))
	fmt.Fprintf(&s, "- Client: `sseload client -n %d -proto %s -ramp %s -warmup %s -duration %s -url %s`; events of 200 bytes of data.\n",
		o.n, o.proto, sc.ramp, sc.warmup, sc.duration, url)
	fmt.Fprintf(&s, "- From Caddy's admin endpoint, counted from the window's start: CPU profile %s–%s, execution trace %s–%s, goroutines, heap (after a forced GC), MemStats and PSS at %s; baseline (goroutines, heap, MemStats, PSS) before the first client.\n",
		cpuAt, cpuAt+cpuSeconds*time.Second, traceAt, traceAt+traceSeconds*time.Second, memAt)
	s.WriteString("- The client's numbers are measured while the profiles are taken: the CPU profiler, the tracer and the forced GC add their own cost to them.\n")
	fmt.Fprintf(&s, "- Binary: `%s` (`go tool pprof %s %s`).\n", b.caddyBin, b.caddyBin, filepath.Join(pr.dir, "cpu.pprof"))
	for _, n := range pr.notes {
		fmt.Fprintf(&s, "- **Note**: %s\n", n)
	}

	s.WriteString("\n## Client report (sseload)\n\n")
	s.WriteString(profClientSummary(&r))

	s.WriteString("\n## CPU by category\n\n")
	s.WriteString(pr.cpuSection())

	s.WriteString("\n## Scheduling (execution trace)\n\n")
	eventsPerSec := 0.0
	if r.Report.WindowSeconds > 0 {
		eventsPerSec = float64(r.Report.ReceivedInWindow) / r.Report.WindowSeconds
	}
	s.WriteString(pr.schedSection(eventsPerSec))

	s.WriteString("\n## Memory per client\n\n")
	s.WriteString(pr.memorySection(baseMem, mem, &r))

	s.WriteString("\n## Files\n\n")
	s.WriteString("`cpu.pprof` (CPU, 10 s), `trace.out` (execution trace, 3 s; `go tool trace trace.out`), `sched.pprof` (`go tool trace -pprof=sched`), " +
		"`heap.pprof` / `heap-base.pprof` (after a forced GC, in the window / before the clients), `goroutine.pprof` / `goroutine-base.pprof`, " +
		"`goroutine.txt` (debug=1), `memstats.txt` / `memstats-base.txt` (heap?debug=1), `sseload.json`, `Caddyfile`, `caddy.log`, the `caddy` binary. " +
		"Only this summary is committed.\n")
	if err := os.WriteFile(filepath.Join(pr.dir, "summary.md"), []byte(s.String()), 0o644); err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "compare: wrote", pr.dir)
	return s.String(), nil
}

// during fetches the profiles in the window that starts at ws.
func (pr *profileRun) during(ws time.Time) {
	pr.waitUntil(ws.Add(cpuAt))
	pr.fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", cpuSeconds), "cpu.pprof")
	pr.waitUntil(ws.Add(traceAt))
	pr.fetch(fmt.Sprintf("/debug/pprof/trace?seconds=%d", traceSeconds), "trace.out")
	pr.waitUntil(ws.Add(memAt))
}

// waitUntil sleeps until t (or the run is stopped).
func (pr *profileRun) waitUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		sleepCtx(pr.b.ctx, d)
	}
}

// fetch saves one admin endpoint's answer under the results directory; a
// failure becomes a note in the summary.
func (pr *profileRun) fetch(path, file string) bool {
	ctx, cancel := context.WithTimeout(pr.b.ctx, 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, pr.admin+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
	}
	if err == nil {
		var f *os.File
		if f, err = os.Create(filepath.Join(pr.dir, file)); err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err != nil {
		pr.notes = append(pr.notes, fmt.Sprintf("fetching %s failed: %v", path, err))
		return false
	}
	return true
}

// memSample is Caddy's memory at one moment.
type memSample struct {
	stats      map[string]uint64 // runtime.MemStats fields from heap?debug=1
	pss, rss   uint64            // bytes, /proc/PID/smaps_rollup
	goroutines int               // goroutine?debug=1 total
	suffix     string            // "" or "-base": the files it was read from
}

// memory takes the goroutine, heap and MemStats snapshots and reads PSS; tag
// "base" marks the baseline before the clients.
func (pr *profileRun) memory(tag string) memSample {
	m := memSample{}
	if tag != "" {
		m.suffix = "-" + tag
	}
	pr.fetch("/debug/pprof/goroutine", "goroutine"+m.suffix+".pprof")
	if pr.fetch("/debug/pprof/goroutine?debug=1", "goroutine"+m.suffix+".txt") {
		m.goroutines = goroutineTotal(filepath.Join(pr.dir, "goroutine"+m.suffix+".txt"))
	}
	pr.fetch("/debug/pprof/heap?gc=1", "heap"+m.suffix+".pprof")
	if pr.fetch("/debug/pprof/heap?debug=1", "memstats"+m.suffix+".txt") {
		m.stats = memStats(filepath.Join(pr.dir, "memstats"+m.suffix+".txt"))
	}
	var err error
	if m.pss, m.rss, err = profReadPSS(pr.pid); err != nil {
		pr.notes = append(pr.notes, "reading PSS: "+err.Error())
	}
	return m
}

var goroutineTotalRE = regexp.MustCompile(`goroutine profile: total (\d+)`)

// goroutineTotal reads the total from a goroutine?debug=1 answer (0 if absent).
func goroutineTotal(file string) int {
	b, _ := os.ReadFile(file)
	if m := goroutineTotalRE.FindSubmatch(b); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	return 0
}

// memStats reads the "# Name = value" lines that close a heap?debug=1
// answer: runtime.MemStats by field name ("# Stack = a / b" gives
// StackInuse and StackSys). Lists (PauseNs, ...) are skipped.
func memStats(file string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(file)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "# ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if inuse, sys, ok := strings.Cut(v, " / "); ok {
			// "# Stack = StackInuse / StackSys", and so MSpan and MCache.
			i, err1 := strconv.ParseUint(inuse, 10, 64)
			s, err2 := strconv.ParseUint(sys, 10, 64)
			if err1 == nil && err2 == nil {
				out[k+"Inuse"], out[k+"Sys"] = i, s
			}
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// profReadPSS reads a process's PSS and RSS in bytes from smaps_rollup.
func profReadPSS(pid int) (pss, rss uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "Pss:":
			pss = n * 1024
		case "Rss:":
			rss = n * 1024
		}
	}
	if pss == 0 {
		return 0, 0, errors.New("no Pss in smaps_rollup")
	}
	return pss, rss, nil
}

// loadProfile parses a saved pprof file of the results directory.
func (pr *profileRun) loadProfile(file string) (*profile.Profile, error) {
	b, err := os.ReadFile(filepath.Join(pr.dir, file))
	if err != nil {
		return nil, err
	}
	return profile.ParseData(b)
}

// cpuSection attributes cpu.pprof.
func (pr *profileRun) cpuSection() string {
	p, err := pr.loadProfile("cpu.pprof")
	if err != nil {
		return "No CPU profile: " + err.Error() + "\n"
	}
	a, err := attribute(p, "cpu")
	if err != nil {
		return "CPU profile unreadable: " + err.Error() + "\n"
	}
	return cpuTable(a, p) + "\n" + cpuReading
}

// cpuReading explains the CPU table.
const cpuReading = "Each sample is charged to the first frame, from the leaf, whose package has a category " +
	"(runtime frames and standard-library helpers such as `sync` or `bufio` are skipped, so `mallocgc` or " +
	"`selectgo` called from our code is ours); stacks of runtime frames only are split into scheduler, GC " +
	"and other. *Via this module*: the share of the category's CPU whose stack passes through this module " +
	"at all (e.g. an HTTP/2 frame written for our handler).\n"

// schedSection reads trace.out and cross-checks it with go tool trace.
func (pr *profileRun) schedSection(eventsPerSec float64) string {
	file := filepath.Join(pr.dir, "trace.out")
	f, err := os.Open(file)
	if err != nil {
		return "No execution trace: " + err.Error() + "\n"
	}
	defer f.Close()
	st, err := readSchedTrace(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return "Execution trace unreadable: " + err.Error() + "\n"
	}
	var cross *[2]int64
	count, delay, crossErr := goSchedProfile(file)
	if crossErr == nil {
		cross = &[2]int64{count, int64(delay)}
		if out, err := exec.Command("go", "tool", "trace", "-pprof=sched", file).Output(); err == nil {
			_ = os.WriteFile(filepath.Join(pr.dir, "sched.pprof"), out, 0o644)
		}
	}
	return schedTable(st, eventsPerSec, cross, crossErr)
}

// memorySection explains the memory per client: the heap by category, the
// goroutines by category, and PSS line by line from MemStats.
func (pr *profileRun) memorySection(base, end memSample, r *runResult) string {
	var b strings.Builder
	n := pr.o.n
	if c := r.Report.Connected; c > 0 {
		n = c
	}
	perKiB := func(v float64) string { return fmt.Sprintf("%.2f", v/float64(n)/1024) }

	fmt.Fprintf(&b, "Per client: the difference between the snapshot in the window and the one before the first client, divided by the %d open streams.\n\n", n)
	b.WriteString("### Live heap by category (`heap.pprof` − `heap-base.pprof`, inuse_space, after a forced GC)\n\n")
	heap, heapErr := pr.netAttribution("heap", "inuse_space")
	if heapErr != nil {
		b.WriteString("Not available: " + heapErr.Error() + "\n")
	} else {
		b.WriteString(perClientTable(heap, n, "heap", profKiB))
	}
	b.WriteString("\n### Goroutines by category (`goroutine.pprof` − `goroutine-base.pprof`, by where each goroutine waits)\n\n")
	gor, gorErr := pr.netAttribution("goroutine", "goroutine")
	if gorErr != nil {
		b.WriteString("Not available: " + gorErr.Error() + "\n")
	} else {
		b.WriteString(perClientTable(gor, n, "goroutines", func(v float64) string { return fmt.Sprintf("%.3f", v) }))
	}
	fmt.Fprintf(&b, "\nGoroutines: %d before the clients, %d in the window (debug=1 totals): %.3f per client",
		base.goroutines, end.goroutines, float64(end.goroutines-base.goroutines)/float64(n))
	if end.goroutines > 0 && end.stats["StackInuse"] > 0 {
		fmt.Fprintf(&b, "; %.1f KiB of stack in use per goroutine (StackInuse / goroutines)",
			float64(end.stats["StackInuse"])/float64(end.goroutines)/1024)
	}
	b.WriteString(".\n")

	b.WriteString("\n### PSS per client, line by line (MemStats and smaps_rollup, same moment)\n\n")
	if len(end.stats) == 0 || len(base.stats) == 0 || end.pss == 0 || base.pss == 0 {
		b.WriteString("Not available: MemStats or PSS missing.\n")
		return b.String()
	}
	d := func(k string) float64 { return float64(end.stats[k]) - float64(base.stats[k]) }
	live := 0.0
	if heapErr == nil {
		live = float64(heap.Total)
	}
	metadata := d("MSpanSys") + d("MCacheSys") + d("GCSys") + d("BuckHashSys") + d("OtherSys")
	goTotal := d("Sys") - d("HeapReleased")
	pss := float64(end.pss) - float64(base.pss)
	b.WriteString("| line | KiB per client |\n|---|---:|\n")
	if heapErr == nil {
		for _, cat := range categoryOrder {
			if v := heap.value(cat); v != 0 {
				fmt.Fprintf(&b, "| live heap: %s | %s |\n", cat, perKiB(float64(v)))
			}
		}
	}
	fmt.Fprintf(&b, "| heap in use but not live objects (HeapInuse − live heap: free slots in spans, sampling error) | %s |\n", perKiB(d("HeapInuse")-live))
	fmt.Fprintf(&b, "| = **HeapInuse** | **%s** |\n", perKiB(d("HeapInuse")))
	fmt.Fprintf(&b, "| free heap kept, not returned to the OS (HeapIdle − HeapReleased) | %s |\n", perKiB(d("HeapIdle")-d("HeapReleased")))
	fmt.Fprintf(&b, "| goroutine stacks (StackSys; StackInuse %s) | %s |\n", perKiB(d("StackInuse")), perKiB(d("StackSys")))
	fmt.Fprintf(&b, "| runtime metadata (MSpanSys + MCacheSys + GCSys + BuckHashSys + OtherSys) | %s |\n", perKiB(metadata))
	fmt.Fprintf(&b, "| = **Go runtime's memory (Sys − HeapReleased)** | **%s** |\n", perKiB(goTotal))
	fmt.Fprintf(&b, "| PSS − that (positive: memory outside Go's accounting; negative: mapped but never touched) | %s |\n", perKiB(pss-goTotal))
	fmt.Fprintf(&b, "| = **PSS** (smaps_rollup; RSS %s) | **%s** |\n", perKiB(float64(end.rss)-float64(base.rss)), perKiB(pss))
	if p := r.Report.Process; p != nil {
		fmt.Fprintf(&b, "| sseload's PSS per client (window's end, no forced GC) | %.2f |\n", p.PSSPerStreamKiB)
	}
	fmt.Fprintf(&b, "\nGC headroom: at the snapshot (right after a forced GC) HeapInuse is %.1f MiB, Go holds %.1f MiB (Sys − HeapReleased) and PSS is %.1f MiB: %.2f× the heap in use. NextGC %.1f MiB (GOGC lets the heap grow to twice the live heap before collecting).\n",
		profMiB(end.stats["HeapInuse"]), profMiB(end.stats["Sys"]-end.stats["HeapReleased"]), profMiB(end.pss),
		float64(end.pss)/max(float64(end.stats["HeapInuse"]), 1), profMiB(end.stats["NextGC"]))
	return b.String()
}

// profMiB converts bytes to MiB.
func profMiB(v uint64) float64 { return float64(v) / (1 << 20) }

// netAttribution attributes <name>.pprof net of <name>-base.pprof.
func (pr *profileRun) netAttribution(name, typ string) (*attribution, error) {
	p, err := pr.loadProfile(name + ".pprof")
	if err != nil {
		return nil, err
	}
	a, err := attribute(p, typ)
	if err != nil {
		return nil, err
	}
	if bp, err := pr.loadProfile(name + "-base.pprof"); err == nil {
		if ba, err := attribute(bp, typ); err == nil {
			a.minus(ba)
		}
	}
	return a, nil
}

// profClientSummary is the client report's headline numbers and problems.
func profClientSummary(r *runResult) string {
	var b strings.Builder
	if r.Err != "" && r.Raw == nil {
		return "The client failed: " + r.Err + "\n"
	}
	c := &r.Report
	b.WriteString("| streams open | delivered / expected | events/s delivered | p50 / p99 / max latency | CPU s per 1k events | CPU (% of a core) | PSS per client | upstream streams |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	evs := 0.0
	if c.WindowSeconds > 0 {
		evs = float64(c.ReceivedInWindow) / c.WindowSeconds
	}
	cpu, cpuPct, pss := "—", "—", "—"
	if p := c.Process; p != nil {
		cpu, cpuPct, pss = fmt.Sprintf("%.4f", p.CPUPer1k), fmt.Sprintf("%.0f%%", p.CPUPercent), fmt.Sprintf("%.1f KiB", p.PSSPerStreamKiB)
	}
	ups := "—"
	if c.UpstreamStreams != nil {
		ups = strconv.Itoa(*c.UpstreamStreams)
	}
	fmt.Fprintf(&b, "| %d of %d | %d / %d | %.0f | %s / %s / %s | %s | %s | %s | %s |\n",
		c.Connected, c.Streams, c.Delivered, c.Expected, evs,
		profDur(time.Duration(c.Latency.P50*1e3)), profDur(time.Duration(c.Latency.P99*1e3)), profDur(time.Duration(c.Latency.Max*1e3)),
		cpu, cpuPct, pss, ups)
	if ps := r.problems(); len(ps) > 0 {
		fmt.Fprintf(&b, "\nProblems: %s.\n", strings.Join(ps, "; "))
	}
	if len(c.Warnings) > 0 {
		fmt.Fprintf(&b, "\nClient warnings: %s.\n", strings.Join(c.Warnings, "; "))
	}
	return b.String()
}

// profProtoName is the protocol's name for headings.
func profProtoName(proto string) string {
	return map[string]string{"h1": "HTTP/1.1", "h2": "HTTP/2", "h3": "HTTP/3"}[proto]
}

// profProtoNote says how the client reaches Caddy.
func profProtoNote(proto string) string {
	if proto == "h1" {
		return "plain HTTP/1.1, a connection per client"
	}
	return "TLS (self-signed, per run), " + profProtoName(proto)
}

// profCopyFile copies a file (the Caddy binary) keeping it executable.
func profCopyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return fmt.Errorf("%s is empty", from)
	}
	_ = os.Remove(to)
	return os.WriteFile(to, b, 0o755)
}
