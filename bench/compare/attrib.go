package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// Categories a stack is charged to (see classify). The order is the order
// of the tables.
const (
	catModule    = "this module"
	catCaddy     = "Caddy"
	catHTTP2     = "HTTP/2 server"
	catHTTP3     = "HTTP/3 (quic-go)"
	catNetHTTP   = "net/http"
	catTLS       = "TLS"
	catSocket    = "socket I/O"
	catProfiler  = "profiler (pprof, trace)"
	catOtherCode = "other Go code"
	catSched     = "runtime: scheduler"
	catGC        = "runtime: GC"
	catRuntime   = "runtime: other"
)

// categoryOrder lists every category in table order.
var categoryOrder = []string{catModule, catCaddy, catHTTP2, catHTTP3, catNetHTTP, catTLS, catSocket,
	catProfiler, catOtherCode, catSched, catGC, catRuntime}

// modulePrefix is the import path prefix of this module's packages.
const modulePrefix = "github.com/sse-proxy/"

// funcPackage splits a symbol name as Go writes it in profiles and traces
// ("net/http.(*http2serverConn).serve", "github.com/a/b.F.func1") into its
// package path and the rest.
func funcPackage(fn string) (pkg, rest string) {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return fn, ""
	}
	return fn[:slash+1+dot], fn[slash+1+dot+1:]
}

// isRuntime reports whether a package belongs to the Go runtime proper,
// whose frames are skipped when looking for who caused the work.
func isRuntime(pkg string) bool {
	return pkg == "runtime" || strings.HasPrefix(pkg, "internal/runtime/") ||
		(strings.HasPrefix(pkg, "runtime/") && !isProfiler(pkg))
}

// isProfiler reports whether a package is the profiling machinery itself.
func isProfiler(pkg string) bool {
	return pkg == "runtime/pprof" || pkg == "runtime/trace" || pkg == "net/http/pprof"
}

// frameCategory is the category of one frame, or "" if the frame says
// nothing (the runtime, and standard-library helpers such as sync or bufio
// that work for whoever calls them).
func frameCategory(fn string) string {
	pkg, rest := funcPackage(fn)
	rest = strings.TrimLeft(rest, "(*")
	switch {
	case strings.HasPrefix(pkg, modulePrefix):
		return catModule
	case strings.HasPrefix(pkg, "github.com/caddyserver/"):
		return catCaddy
	case strings.HasPrefix(pkg, "golang.org/x/net/http2"), strings.HasPrefix(pkg, "vendor/golang.org/x/net/http2"),
		pkg == "golang.org/x/net/internal/httpcommon",
		pkg == "net/http" && strings.HasPrefix(rest, "http2"):
		return catHTTP2
	case strings.HasPrefix(pkg, "github.com/quic-go/"):
		return catHTTP3
	case isProfiler(pkg):
		return catProfiler
	case pkg == "net/http" || strings.HasPrefix(pkg, "net/http/"):
		return catNetHTTP
	case strings.HasPrefix(pkg, "crypto/"), strings.HasPrefix(pkg, "vendor/golang.org/x/crypto/"),
		strings.HasPrefix(pkg, "golang.org/x/crypto/"):
		return catTLS
	case pkg == "syscall", pkg == "internal/poll", pkg == "net", pkg == "internal/syscall/unix",
		strings.HasPrefix(pkg, "golang.org/x/sys/"):
		return catSocket
	case strings.Contains(strings.SplitN(pkg, "/", 2)[0], "."):
		return catOtherCode // a third-party package (zap, ...)
	}
	return ""
}

// Runtime functions that mark a runtime-only stack as scheduling or as
// garbage collection; the frame nearest the leaf decides.
var (
	schedFuncs = map[string]bool{
		"runtime.schedule": true, "runtime.findRunnable": true, "runtime.park_m": true,
		"runtime.mcall": true, "runtime.goexit0": true, "runtime.gosched_m": true,
		"runtime.goschedImpl": true, "runtime.gopreempt_m": true, "runtime.stopm": true,
		"runtime.startm": true, "runtime.wakep": true, "runtime.netpoll": true,
		"runtime.sysmon": true, "runtime.exitsyscall0": true, "runtime.handoffp": true,
		"runtime.goready": true, "runtime.ready": true, "runtime.newproc": true,
		"runtime.newproc1": true, "runtime.execute": true, "runtime.retake": true,
		"runtime.preemptone": true, "runtime.runqgrab": true, "runtime.stealWork": true,
	}
	gcPrefixes = []string{
		"runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.gcAssist", "runtime.markroot",
		"runtime.scanobject", "runtime.scanstack", "runtime.gcStart", "runtime.gcMark",
		"runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone", "runtime.gcSweep",
		"runtime.(*sweepLocked)", "runtime.(*mheap).reclaim", "runtime.(*scavengerState)",
		"runtime.greyobject", "runtime.gcFlushBgCredit", "runtime.gcWriteBarrier",
		"runtime.wbBufFlush", "runtime.forEachP", "runtime.stopTheWorld", "runtime.startTheWorld",
	}
)

// runtimeCategory splits a stack made only of runtime frames (leaf first).
func runtimeCategory(frames []string) (cat, by string) {
	for _, f := range frames {
		if schedFuncs[f] {
			return catSched, f
		}
		for _, p := range gcPrefixes {
			if strings.HasPrefix(f, p) {
				return catGC, f
			}
		}
	}
	if len(frames) == 0 {
		return catRuntime, "(no stack)"
	}
	return catRuntime, frames[0]
}

// classify charges a stack (function names, leaf first) to the category of
// the first frame from the leaf that has one; by is that frame's function
// (for runtime-only stacks, the deciding runtime function). viaModule
// reports whether any frame of the stack is this module's.
func classify(frames []string) (cat, by string, viaModule bool) {
	for _, f := range frames {
		if frameCategory(f) == catModule {
			viaModule = true
			break
		}
	}
	for _, f := range frames {
		if c := frameCategory(f); c != "" {
			return c, f, viaModule
		}
	}
	onlyRuntime := true
	for _, f := range frames {
		if pkg, _ := funcPackage(f); !isRuntime(pkg) {
			onlyRuntime = false
			break
		}
	}
	if onlyRuntime {
		cat, by = runtimeCategory(frames)
		return cat, by, viaModule
	}
	// Only standard-library frames (time, sync, ...) and the runtime.
	for _, f := range frames {
		if pkg, _ := funcPackage(f); !isRuntime(pkg) {
			return catOtherCode, f, viaModule
		}
	}
	return catOtherCode, frames[0], viaModule
}

// sampleFrames lists a pprof sample's function names, leaf first, inlined
// calls included (a Location's Lines go from the inlined callee outwards).
func sampleFrames(s *profile.Sample) []string {
	var out []string
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function != nil {
				out = append(out, ln.Function.Name)
			}
		}
	}
	return out
}

// catTotal is one category's share of a profile.
type catTotal struct {
	Category  string
	Value     int64            // in the profile's unit (ns, bytes, goroutines)
	Samples   int64            // number of samples (a CPU profile's count) or of stacks
	ViaModule int64            // Value of stacks passing through this module
	byFunc    map[string]int64 // Value by the deciding function
}

// attribution is a profile split into categories.
type attribution struct {
	Unit  string
	Total int64
	Cats  map[string]*catTotal
}

// attribute splits the values of sample type typ (e.g. "cpu", "inuse_space",
// "goroutine") of p into categories.
func attribute(p *profile.Profile, typ string) (*attribution, error) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == typ {
			idx = i
		}
	}
	if idx < 0 {
		var have []string
		for _, st := range p.SampleType {
			have = append(have, st.Type)
		}
		return nil, fmt.Errorf("profile has no %q values (has %s)", typ, strings.Join(have, ", "))
	}
	a := &attribution{Unit: p.SampleType[idx].Unit, Cats: map[string]*catTotal{}}
	countIdx := -1 // a CPU profile's "samples" count; otherwise each record counts once
	for i, st := range p.SampleType {
		if st.Type == "samples" && i != idx {
			countIdx = i
		}
	}
	for _, s := range p.Sample {
		v := s.Value[idx]
		if v == 0 {
			continue
		}
		cat, by, via := classify(sampleFrames(s))
		n := int64(1)
		if countIdx >= 0 {
			n = s.Value[countIdx]
		}
		a.add(cat, by, v, n, via)
	}
	return a, nil
}

// minus subtracts a baseline (the same kind of profile taken before the
// clients came), category by category and function by function.
func (a *attribution) minus(base *attribution) {
	if base == nil {
		return
	}
	a.Total -= base.Total
	for cat, bt := range base.Cats {
		ct := a.Cats[cat]
		if ct == nil {
			ct = &catTotal{Category: cat, byFunc: map[string]int64{}}
			a.Cats[cat] = ct
		}
		ct.Value -= bt.Value
		ct.ViaModule -= bt.ViaModule
		for f, v := range bt.byFunc {
			ct.byFunc[f] -= v
		}
	}
}

// value is the total of one category (0 if absent).
func (a *attribution) value(cat string) int64 {
	if ct := a.Cats[cat]; ct != nil {
		return ct.Value
	}
	return 0
}

// top returns the n functions with the largest values in a category.
func (ct *catTotal) top(n int) []string {
	fs := make([]string, 0, len(ct.byFunc))
	for f, v := range ct.byFunc {
		if v > 0 {
			fs = append(fs, f)
		}
	}
	slices.SortFunc(fs, func(x, y string) int {
		if c := cmp.Compare(ct.byFunc[y], ct.byFunc[x]); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	return fs[:min(n, len(fs))]
}

// shortFunc drops the import path from a function name for tables:
// "github.com/x/y/share.(*Hub).deliver" -> "share.(*Hub).deliver".
func shortFunc(fn string) string {
	pkg, rest := funcPackage(fn)
	if rest == "" {
		return fn
	}
	return pkg[strings.LastIndexByte(pkg, '/')+1:] + "." + rest
}

// topCell is a table cell with a category's top functions and their values.
func (ct *catTotal) topCell(n int, format func(int64) string) string {
	var parts []string
	for _, f := range ct.top(n) {
		parts = append(parts, fmt.Sprintf("`%s` %s", shortFunc(f), format(ct.byFunc[f])))
	}
	return strings.Join(parts, ", ")
}

// cpuTable renders a CPU attribution: seconds, share of samples, share that
// passes through this module, top functions.
func cpuTable(a *attribution, p *profile.Profile) string {
	var b strings.Builder
	samples := int64(0)
	for _, ct := range a.Cats {
		samples += ct.Samples
	}
	dur := float64(p.DurationNanos) / 1e9
	fmt.Fprintf(&b, "CPU profile: %.2f s of CPU in %.1f s (%.0f%% of a core), %d samples.\n\n",
		float64(a.Total)/1e9, dur, float64(a.Total)/1e9/max(dur, 1e-9)*100, samples)
	b.WriteString("| category | CPU s | % of samples | of which via this module | top functions (CPU s) |\n|---|---:|---:|---:|---|\n")
	for _, cat := range categoryOrder {
		ct := a.Cats[cat]
		if ct == nil || ct.Value <= 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %.3f | %.1f%% | %s | %s |\n", cat, float64(ct.Value)/1e9,
			profPct(ct.Samples, samples), ct.viaCell(),
			ct.topCell(3, func(v int64) string { return fmt.Sprintf("%.3f", float64(v)/1e9) }))
	}
	return b.String()
}

// viaCell is the share of a category's value whose stacks pass through
// this module ("—" for a category that shrank below its baseline).
func (ct *catTotal) viaCell() string {
	if ct.Value <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", profPct(ct.ViaModule, ct.Value))
}

// profPct is x as a percentage of of (0 if of is 0).
func profPct(x, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(x) / float64(of) * 100
}

// perClientTable renders an attribution already net of its baseline as
// values per client (bytes or goroutines), with each category's top
// functions.
func perClientTable(a *attribution, n int, what string, format func(float64) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| category | %s per client | %% | of which via this module | top functions (per client) |\n|---|---:|---:|---:|---|\n", what)
	per := func(v int64) float64 { return float64(v) / float64(max(n, 1)) }
	for _, cat := range categoryOrder {
		ct := a.Cats[cat]
		if ct == nil || strings.TrimPrefix(format(per(ct.Value)), "-") == format(0) {
			continue // nothing per client, or a baseline's rounding
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f%% | %s | %s |\n", cat, format(per(ct.Value)),
			profPct(ct.Value, a.Total), ct.viaCell(),
			ct.topCell(3, func(v int64) string { return format(per(v)) }))
	}
	fmt.Fprintf(&b, "| **total** | **%s** | | | |\n", format(per(a.Total)))
	return b.String()
}

// profKiB formats bytes as KiB with two decimals.
func profKiB(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
