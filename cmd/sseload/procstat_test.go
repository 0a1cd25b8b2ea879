package main

import (
	"encoding/binary"
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	cases := []struct {
		in           string
		utime, stime uint64
	}{
		{"1234 (caddy) S 1 1234 1234 0 -1 4194560 5000 0 0 0 731 158 0 0 20 0 12 0 100 1000000 2000 18446744073709551615\n", 731, 158},
		// A command name with spaces and parentheses.
		{"42 (a) b (c)) R 1 42 42 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1", 5, 6},
	}
	for _, c := range cases {
		u, s, err := parseStat([]byte(c.in))
		if err != nil || u != c.utime || s != c.stime {
			t.Errorf("parseStat(%q) = %d, %d, %v; want %d, %d", c.in, u, s, err, c.utime, c.stime)
		}
	}
	for _, bad := range []string{"", "1 caddy S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 6 0"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestParseSmapsRollup(t *testing.T) {
	in := `55d0c0000000-7ffd2a1e1000 ---p 00000000 00:00 0                          [rollup]
Rss:               45964 kB
Pss:               43121 kB
Pss_Dirty:         30000 kB
Pss_Anon:          30000 kB
Shared_Clean:       3100 kB
Swap:                  0 kB
`
	rss, pss, err := parseSmapsRollup([]byte(in))
	if err != nil || rss != 45964 || pss != 43121 {
		t.Fatalf("got %d %d %v", rss, pss, err)
	}
	if _, _, err := parseSmapsRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Fatal("accepted a rollup without Pss")
	}
}

func TestParseAuxv(t *testing.T) {
	var b []byte
	for _, kv := range [][2]uint64{{6, 4096}, {17, 250}, {0, 0}} {
		b = binary.LittleEndian.AppendUint64(b, kv[0])
		b = binary.LittleEndian.AppendUint64(b, kv[1])
	}
	if hz, ok := parseAuxvClockTicks(b); !ok || hz != 250 {
		t.Fatalf("got %d %v", hz, ok)
	}
	if _, ok := parseAuxvClockTicks(b[16*2:]); ok {
		t.Fatal("found AT_CLKTCK after AT_NULL")
	}
}

func TestReadProcSampleSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		t.Skip("no /proc/self/smaps_rollup")
	}
	// Burn a little CPU so the tick counter is likely non-zero.
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	_ = x
	s, err := readProcSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB == 0 || s.PSSKiB == 0 || s.PSSKiB > s.RSSKiB+1 {
		t.Fatalf("implausible memory: %+v", s)
	}
	if clockTicks <= 0 {
		t.Fatalf("clock ticks %d", clockTicks)
	}
}
