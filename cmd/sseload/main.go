// Command sseload generates and measures Server-Sent-Events load on one
// machine.
//
//	sseload upstream -listen 127.0.0.1:9000 [-rate 10] [-size 256] [-mode per-stream|broadcast]
//	sseload client -url http://127.0.0.1:9000/ -n 1000 -duration 30s [-proto h1|h2|h3] [-pid PID] [-json]
//	sseload client -url URL1 -url URL2 -url URL3 -pid P1,P2,P3 -redis /path/redis.sock ...  # a cluster
//
// The upstream is a plain HTTP/1.1 SSE backend whose events carry their send
// time and a sequence number (broadcast events also the time their tick was
// made); the client opens many streams (directly or through a proxy), checks
// every event arrives in order, and reports latency percentiles (from send,
// and from the tick) and, with -pid, the CPU and memory the process in the middle
// spent; spread over several URLs, each instance's, and with -redis what
// a redis-server behind them spent and did. Every run is bounded in
// streams and duration.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Hard limits on what one invocation may generate.
const (
	maxStreams     = 25_000
	maxRunDuration = 10 * time.Minute
)

const usage = `usage:
  sseload upstream -listen 127.0.0.1:PORT [-rate N] [-size BYTES] [-mode per-stream|broadcast]
  sseload client -url URL [-url URL ...] -n STREAMS -duration D [-proto h1|h2|h3] [-insecure] [-ramp D]
                 [-h2-streams-per-conn N] [-h3-streams-per-conn N]
                 [-pid PID[,PID...]] [-redis ADDR] [-upstream-health URL] [-json]

Run "sseload upstream -h" or "sseload client -h" for all flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = runUpstream(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "sseload: unknown subcommand %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sseload:", err)
		os.Exit(1)
	}
}

// raiseOpenFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the resulting soft limit.
func raiseOpenFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
