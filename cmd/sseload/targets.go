package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A run may target several URLs — the instances of a cluster — and sample
// several processes. Stream i goes to URL i mod len(urls), so the streams
// are spread round-robin; with as many processes as URLs, process k is
// taken to serve URL k and its CPU is divided by the events of that URL's
// streams.

// maxTargets bounds -url and -pid lists.
const maxTargets = 16

// urlList is the repeatable -url flag.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, " ") }

// Set adds one URL; a value with spaces adds each of its fields.
func (l *urlList) Set(s string) error {
	for _, u := range strings.Fields(s) {
		if len(*l) == maxTargets {
			return fmt.Errorf("at most %d URLs", maxTargets)
		}
		*l = append(*l, u)
	}
	return nil
}

// pidList is the -pid flag: process ids separated by commas.
type pidList []int

func (l *pidList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// Set replaces the list with the comma-separated ids in s.
func (l *pidList) Set(s string) error {
	*l = (*l)[:0]
	for f := range strings.SplitSeq(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p <= 0 {
			return fmt.Errorf("not a process id: %q", f)
		}
		if len(*l) == maxTargets {
			return fmt.Errorf("at most %d process ids", maxTargets)
		}
		*l = append(*l, p)
	}
	if len(*l) == 0 {
		return errors.New("no process id")
	}
	return nil
}

// target is the URL index stream i uses.
func (cfg *clientConfig) target(i int) int { return i % len(cfg.urls) }

// pidServes returns the URL index whose events process k's CPU is divided
// by, or -1 (all events) when processes and URLs do not pair up.
func (cfg *clientConfig) pidServes(k int) int {
	if len(cfg.pids) > 1 && len(cfg.pids) == len(cfg.urls) {
		return k
	}
	return -1
}

// sumSamples adds up samples of several processes taken at about the same
// time: CPU and memory are summed, the time is the first's.
func sumSamples(ss []ProcSample) ProcSample {
	var sum ProcSample
	for i, s := range ss {
		if i == 0 {
			sum.At = s.At
		}
		sum.CPUTicks += s.CPUTicks
		sum.RSSKiB += s.RSSKiB
		sum.PSSKiB += s.PSSKiB
	}
	return sum
}
