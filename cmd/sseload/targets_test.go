package main

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func TestClientSpreadsOverURLs(t *testing.T) {
	var srvs [3]*httptest.Server
	var urls []string
	for i := range srvs {
		srvs[i] = httptest.NewServer(newUpstream(50, 100, "broadcast", 100))
		defer srvs[i].Close()
		urls = append(urls, srvs[i].URL+"/")
	}
	self := os.Getpid()
	cfg := clientConfig{
		urls: urls, n: 7, proto: "h1", pids: []int{self, self, self},
		duration: 400 * time.Millisecond, warmup: 100 * time.Millisecond, grace: 300 * time.Millisecond,
		connectTimeout: 5 * time.Second, readBuf: 512, h3PerConn: 100,
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	c, closeTransports, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeTransports()
	rep := c.run(context.Background())
	checkReport(t, rep, 7, true)
	if len(rep.ConnectedBy) != 3 || rep.ConnectedBy[0] != 3 || rep.ConnectedBy[1] != 2 || rep.ConnectedBy[2] != 2 {
		t.Fatalf("streams per URL %v, want [3 2 2]", rep.ConnectedBy)
	}
	if len(rep.Processes) != 3 || rep.Process.PID != 0 {
		t.Fatalf("processes: %+v, sum %+v", rep.Processes, rep.Process)
	}
	for k, p := range rep.Processes {
		if p.URLIndex == nil || *p.URLIndex != k {
			t.Errorf("process %d serves %v", k, p.URLIndex)
		}
	}
	// The same process sampled three times: the sum is three times one.
	if got, one := rep.Process.PSSEndKiB, rep.Processes[0].PSSEndKiB; got < 2*one {
		t.Errorf("summed PSS %d KiB, one sample %d KiB", got, one)
	}
}

func TestListFlags(t *testing.T) {
	var u urlList
	if err := u.Set("http://a/ http://b/"); err != nil || len(u) != 2 {
		t.Fatalf("%v %v", u, err)
	}
	_ = u.Set("http://c/")
	if u.String() != "http://a/ http://b/ http://c/" {
		t.Fatal(u.String())
	}
	var p pidList
	if err := p.Set("12, 13,14"); err != nil || p.String() != "12,13,14" {
		t.Fatalf("%v %v", p, err)
	}
	for _, bad := range []string{"", "x", "0", "1,,2", "-3"} {
		if p.Set(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	cfg := clientConfig{urls: []string{"a", "b"}, pids: []int{1, 2}}
	if cfg.target(5) != 1 || cfg.pidServes(1) != 1 {
		t.Error("pairing")
	}
	cfg.pids = []int{1}
	if cfg.pidServes(0) != -1 {
		t.Error("one pid serves all")
	}
}
