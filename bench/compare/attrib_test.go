package main

import (
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

// synthProfile builds a profile whose samples have the given stacks
// (function names, leaf first; a name with "+" joins functions inlined into
// one location, callee first) and values of type typ; each sample's
// "samples" count is its value over 10,000,000 (a 10 ms CPU sample).
func synthProfile(typ, unit string, stacks [][]string, values []int64) *profile.Profile {
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: typ, Unit: unit}},
		DurationNanos: 10e9,
	}
	funcs := map[string]*profile.Function{}
	fn := func(name string) *profile.Function {
		if f := funcs[name]; f != nil {
			return f
		}
		f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
		funcs[name] = f
		p.Function = append(p.Function, f)
		return f
	}
	for i, stk := range stacks {
		s := &profile.Sample{Value: []int64{values[i] / 1e7, values[i]}}
		for _, frame := range stk {
			loc := &profile.Location{ID: uint64(len(p.Location) + 1)}
			for name := range strings.SplitSeq(frame, "+") {
				loc.Line = append(loc.Line, profile.Line{Function: fn(name)})
			}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

const mod = "github.com/sse-proxy/caddy-sse-proxy/share"

func TestAttributeCPU(t *testing.T) {
	stacks := [][]string{
		// runtime work on behalf of our code is ours
		{"runtime.selectgo", mod + ".(*keptClient).take", "net/http.(*http2serverConn).runHandler", "runtime.goexit"},
		// the HTTP/2 server writing a frame for our handler: HTTP/2, via the module
		{"runtime.memmove", "bufio.(*Writer).Write", "net/http.(*http2serverConn).writeDataFromHandler",
			"net/http.(*http2responseWriter).Flush", mod + ".drain", "runtime.goexit"},
		// an inlined HTTP/2 frame inside our function: the callee (first line) decides
		{"runtime.memmove", "net/http.(*http2Framer).WriteData+" + mod + ".(*Hub).deliver", "runtime.goexit"},
		// socket writes under TLS under HTTP/2: the socket decides
		{"internal/runtime/syscall/linux.Syscall6", "syscall.write", "internal/poll.(*FD).Write",
			"net.(*conn).Write", "crypto/tls.(*Conn).Write", "net/http.(*http2serverConn).writeFrameAsync"},
		{"vendor/golang.org/x/crypto/chacha20poly1305.(*chacha20poly1305).seal", "crypto/tls.(*halfConn).encrypt"},
		// sync is skipped, Caddy decides
		{"sync.(*Mutex).Lock", "github.com/caddyserver/caddy/v2/modules/caddyhttp.(*Server).ServeHTTP"},
		{"github.com/quic-go/quic-go.(*connection).run"},
		{"net/http.(*conn).serve"},
		{"runtime/pprof.(*profileBuilder).addCPUData", "runtime/pprof.profileWriter"},
		{"go.uber.org/zap.(*Logger).Info"},
		{"time.Sleep", "main.main"},
		// runtime-only stacks
		{"runtime.futex", "runtime.futexsleep", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule", "runtime.park_m", "runtime.mcall"},
		{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker", "runtime.goexit"},
		{"runtime.memclrNoHeapPointers", "runtime.sysAlloc"},
	}
	values := []int64{100, 200, 50, 400, 30, 10, 20, 5, 3, 2, 1, 60, 70, 9}
	for i := range values {
		values[i] *= 1e7 // samples of 10 ms
	}
	a, err := attribute(synthProfile("cpu", "nanoseconds", stacks, values), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		catModule: 100, catHTTP2: 250, catSocket: 400, catTLS: 30, catCaddy: 10, catHTTP3: 20,
		catNetHTTP: 5, catProfiler: 3, catOtherCode: 3, catSched: 60, catGC: 70, catRuntime: 9,
	}
	for cat, v := range want {
		if got := a.value(cat); got != v*1e7 {
			t.Errorf("%s: %d ns, want %d", cat, got, v)
		}
	}
	if a.Total != 960e7 {
		t.Errorf("total %d, want 9.6 s", a.Total)
	}
	if got := a.Cats[catHTTP2].ViaModule; got != 250e7 {
		t.Errorf("HTTP/2 via module: %d, want 250", got)
	}
	if got := a.Cats[catSocket].ViaModule; got != 0 {
		t.Errorf("socket via module: %d, want 0", got)
	}
	if top := a.Cats[catHTTP2].top(3); len(top) != 2 || top[0] != "net/http.(*http2serverConn).writeDataFromHandler" ||
		top[1] != "net/http.(*http2Framer).WriteData" {
		t.Errorf("HTTP/2 top functions %v", top)
	}
	if top := a.Cats[catSched].top(1); top[0] != "runtime.stopm" {
		t.Errorf("scheduler decided by %v, want runtime.stopm", top)
	}
	table := cpuTable(a, synthProfile("cpu", "nanoseconds", nil, nil))
	for _, w := range []string{"CPU profile: 9.60 s of CPU in 10.0 s (96% of a core), 960 samples.",
		"| this module | 1.000 | 10.4% | 100% | `share.(*keptClient).take` 1.000 |",
		"| HTTP/2 server | 2.500 | 26.0% | 100% | `http.(*http2serverConn).writeDataFromHandler` 2.000, `http.(*http2Framer).WriteData` 0.500 |",
		"| socket I/O | 4.000 | 41.7% | 0% | `syscall.write` 4.000 |"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
}

func TestAttributeHeapPerClient(t *testing.T) {
	stacks := [][]string{
		{"runtime.malg", "runtime.newproc1", "runtime.newproc", "net/http.(*http2serverConn).scheduleHandler"},
		{"runtime.mallocgc", "runtime.makeslice", "bufio.NewWriterSize", mod + ".newClient"},
		{"runtime.malg", "runtime.newproc1", "runtime.systemstack"},
	}
	base, err := attribute(synthProfile("inuse_space", "bytes", stacks, []int64{0, 0, 4096}), "inuse_space")
	if err != nil {
		t.Fatal(err)
	}
	a, err := attribute(synthProfile("inuse_space", "bytes", stacks, []int64{8 * 1024 * 100, 4 * 1024 * 100, 4096 + 1024*100}), "inuse_space")
	if err != nil {
		t.Fatal(err)
	}
	a.minus(base)
	table := perClientTable(a, 100, "heap", profKiB)
	for _, w := range []string{
		"| HTTP/2 server | 8.00 KiB | 61.5% | 0% |",
		"| this module | 4.00 KiB | 30.8% | 100% | `share.newClient` 4.00 KiB |",
		"| runtime: scheduler | 1.00 KiB |",
		"| **total** | **13.00 KiB** |",
	} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
	if _, err := attribute(synthProfile("inuse_space", "bytes", stacks, []int64{1, 1, 1}), "cpu"); err == nil {
		t.Error("attribute accepted a sample type the profile does not have")
	}
}

func TestFuncPackage(t *testing.T) {
	for _, c := range [][3]string{
		{"net/http.(*http2serverConn).serve", "net/http", "(*http2serverConn).serve"},
		{"github.com/a/b.v2/c.F.func1", "github.com/a/b.v2/c", "F.func1"},
		{"runtime.gcBgMarkWorker", "runtime", "gcBgMarkWorker"},
		{"main.main", "main", "main"},
	} {
		if pkg, rest := funcPackage(c[0]); pkg != c[1] || rest != c[2] {
			t.Errorf("funcPackage(%q) = %q, %q", c[0], pkg, rest)
		}
	}
}
