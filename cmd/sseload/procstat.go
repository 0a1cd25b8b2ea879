package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ProcSample is one reading of a process's CPU time and memory.
type ProcSample struct {
	At       time.Time
	CPUTicks uint64 // utime+stime in clock ticks, all threads, including exited ones
	RSSKiB   uint64 // resident set size
	PSSKiB   uint64 // proportional set size (shared pages divided among sharers)
}

// CPUSeconds converts the sample's CPU ticks to seconds.
func (s ProcSample) CPUSeconds() float64 { return float64(s.CPUTicks) / float64(clockTicks) }

// clockTicks is the kernel's USER_HZ, the unit of utime/stime in /proc/PID/stat.
var clockTicks = readClockTicks()

// readProcSample reads /proc/PID/stat and /proc/PID/smaps_rollup.
func readProcSample(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	utime, stime, err := parseStat(stat)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	s.CPUTicks = utime + stime
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return s, err
	}
	s.RSSKiB, s.PSSKiB, err = parseSmapsRollup(rollup)
	if err != nil {
		return s, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
	}
	return s, nil
}

// parseStat returns utime and stime (fields 14 and 15) from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may itself
// contain spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (utime, stime uint64, err error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, 0, errors.New("no command name")
	}
	// After ")": field 3 (state) is the first.
	fields := bytes.Fields(b[end+1:])
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, 0, fmt.Errorf("only %d fields after the command name", len(fields))
	}
	if utime, err = strconv.ParseUint(string(fields[utimeIdx]), 10, 64); err != nil {
		return 0, 0, err
	}
	if stime, err = strconv.ParseUint(string(fields[stimeIdx]), 10, 64); err != nil {
		return 0, 0, err
	}
	return utime, stime, nil
}

// parseSmapsRollup returns the Rss and Pss lines (in KiB) of /proc/PID/smaps_rollup.
func parseSmapsRollup(b []byte) (rss, pss uint64, err error) {
	var haveRSS, havePSS bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 3 || string(f[2]) != "kB" {
			continue
		}
		var dst *uint64
		switch string(f[0]) {
		case "Rss:":
			dst, haveRSS = &rss, true
		case "Pss:":
			dst, havePSS = &pss, true
		default:
			continue
		}
		if *dst, err = strconv.ParseUint(string(f[1]), 10, 64); err != nil {
			return 0, 0, err
		}
	}
	if !haveRSS || !havePSS {
		return 0, 0, errors.New("no Rss or Pss line")
	}
	return rss, pss, nil
}

// readClockTicks reads AT_CLKTCK from the process's auxiliary vector and
// falls back to 100, the value on every common Linux platform.
func readClockTicks() int64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	if hz, ok := parseAuxvClockTicks(b); ok {
		return hz
	}
	return 100
}

// parseAuxvClockTicks finds AT_CLKTCK in a 64-bit little-endian auxv dump.
func parseAuxvClockTicks(b []byte) (int64, bool) {
	const atClkTck = 17
	for len(b) >= 16 {
		key := binary.LittleEndian.Uint64(b)
		val := binary.LittleEndian.Uint64(b[8:])
		if key == atClkTck && val > 0 && val < 1_000_000 {
			return int64(val), true
		}
		if key == 0 {
			break
		}
		b = b[16:]
	}
	return 0, false
}
