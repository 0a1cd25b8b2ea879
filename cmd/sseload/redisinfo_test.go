package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
)

func TestParseRedisInfo(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n\r\n# Stats\r\ntotal_commands_processed:99\r\n" +
		"# Commandstats\r\ncmdstat_xadd:calls=5,usec=12,usec_per_call=2.40,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=2,usec=1\r\n"
	s, err := parseRedisInfo(info)
	if err != nil || s.PID != 4242 || s.Total != 99 || s.Calls["xadd"] != 5 || s.Calls["client|setname"] != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := parseRedisInfo("# Server\r\n"); err == nil {
		t.Error("no process_id accepted")
	}
	if _, err := readBulk(bufio.NewReader(strings.NewReader("-NOAUTH Authentication required.\r\n"))); err == nil ||
		!strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("error reply: %v", err)
	}
}

// A real redis-server: commands run by a script count under their own
// names, the sampler's INFO does not count, and appends are XADDs.
func TestRedisSamplerCountsScriptCommands(t *testing.T) {
	srv := redistest.Start(t)
	r := redisSampler{addr: srv.Addr()}
	r.sample()
	r.sample()
	conn, err := net.DialTimeout("unix", srv.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	script := "redis.call('XADD', KEYS[1], '*', 'd', ARGV[1]); return redis.call('PUBLISH', 'c', ARGV[1])"
	for i := range 3 {
		cmd := fmt.Sprintf("*5\r\n$4\r\nEVAL\r\n$%d\r\n%s\r\n$1\r\n1\r\n$1\r\ns\r\n$1\r\n%d\r\n", len(script), script, i)
		if _, err := conn.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
			t.Fatalf("EVAL: %q %v", line, err)
		}
	}
	r.sample()
	if r.err != nil {
		t.Fatal(r.err)
	}
	rep := r.report(30)
	if rep == nil || rep.Appends != 3 || rep.ByCommand["eval"] != 3 || rep.ByCommand["publish"] != 3 || rep.Commands != 9 {
		t.Fatalf("%+v", rep)
	}
	if rep.CommandsPerAppend != 3 || rep.PID <= 0 || rep.PID == os.Getpid() || rep.CPUSeconds <= 0 {
		t.Fatalf("%+v", rep)
	}
}
