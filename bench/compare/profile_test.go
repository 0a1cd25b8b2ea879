package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfileCaddyfile(t *testing.T) {
	cf := profileCaddyfile("sse_proxy_share", "127.0.0.1:9000", 2019, 8080, 8443, "/c.pem", "/k.pem")
	for _, want := range []string{
		"admin 127.0.0.1:2019\n",
		"protocols h1 h2 h3",
		"http://127.0.0.1:8080 {\n\tbind 127.0.0.1\n\tsse_proxy 127.0.0.1:9000 {\n\t\theartbeat 15s\n\t\tshare\n\t}\n}",
		"https://127.0.0.1:8443 {\n\tbind 127.0.0.1\n\ttls /c.pem /k.pem\n\tsse_proxy 127.0.0.1:9000 {",
	} {
		if !strings.Contains(cf, want) {
			t.Errorf("Caddyfile lacks %q:\n%s", want, cf)
		}
	}
	if strings.Contains(cf, "admin off") {
		t.Errorf("the profile needs the admin endpoint:\n%s", cf)
	}
}

func TestProfileOptsValidate(t *testing.T) {
	good := profileOpts{on: true, n: 8000, proto: "h2", rate: 2, subject: "sse_proxy_share"}
	if err := good.validate(); err != nil {
		t.Fatal(err)
	}
	if got := good.dirName(); got != "profile-sse_proxy_share-h2-8000" {
		t.Errorf("dirName %q", got)
	}
	for _, bad := range []profileOpts{
		{n: 0, proto: "h2", rate: 2, subject: "sse_proxy_share"},
		{n: 10, proto: "h4", rate: 2, subject: "sse_proxy_share"},
		{n: 10, proto: "h2", rate: 0, subject: "sse_proxy_share"},
		{n: 10, proto: "h2", rate: 2, subject: "nginx"},
	} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestMemStatsAndGoroutineTotal reads the text answers of
// /debug/pprof/heap?debug=1 and /debug/pprof/goroutine?debug=1 as
// net/http/pprof writes them.
func TestMemStatsAndGoroutineTotal(t *testing.T) {
	dir := t.TempDir()
	heap := filepath.Join(dir, "memstats.txt")
	if err := os.WriteFile(heap, []byte(`heap profile: 3: 4096 [10: 8192] @ heap/1048576
1: 4096 [1: 4096] @ 0x1 0x2
#	0x1	main.f+0x1	/x.go:1

# runtime.MemStats
# Alloc = 8522848
# Sys = 31291656
# HeapInuse = 11468800
# HeapReleased = 4988928
# Stack = 3964928 / 4096000
# MSpan = 199360 / 244800
# PauseNs = [20469 28353 0]
# GCCPUFraction = 0.0006885173156449013
# DebugGC = false
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := memStats(heap)
	for k, want := range map[string]uint64{
		"Sys": 31291656, "HeapInuse": 11468800, "HeapReleased": 4988928,
		"StackInuse": 3964928, "StackSys": 4096000, "MSpanInuse": 199360, "MSpanSys": 244800,
	} {
		if ms[k] != want {
			t.Errorf("%s = %d, want %d", k, ms[k], want)
		}
	}
	if _, ok := ms["PauseNs"]; ok {
		t.Error("a list was read as a number")
	}
	gor := filepath.Join(dir, "goroutine.txt")
	if err := os.WriteFile(gor, []byte("goroutine profile: total 8219\n8000 @ 0x1 0x2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := goroutineTotal(gor); n != 8219 {
		t.Errorf("goroutine total %d, want 8219", n)
	}
}
