package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// With -redis, the client samples a redis-server around the window, as it
// samples -pid processes: its CPU from /proc/PID/task/*/schedstat, in
// nanoseconds, since Redis uses little CPU per event and clock ticks (10 ms)
// would round it away (the PID from INFO, so Redis must run on this
// machine), and its commands from INFO
// commandstats. Commands a Lua script runs are counted there too, each
// under its own name, as well as the EVALSHA that ran them; the INFO calls
// of the sampler itself are left out. No AUTH: point it at a benchmark's
// own Redis.

// redisSample is one reading of a redis-server.
type redisSample struct {
	At       time.Time
	PID      int
	CPUNanos uint64            // time on a CPU, all threads
	Calls    map[string]uint64 // INFO commandstats: calls per command, lower case ("xadd", "evalsha", "client|setname")
	Total    uint64            // INFO stats: total_commands_processed
}

// redisSampler takes the samples of one run: before the streams open, at
// the window's start and at its end. After an error it samples no more.
type redisSampler struct {
	addr    string
	samples []redisSample
	err     error
}

// sample reads INFO and the process's CPU once.
func (r *redisSampler) sample() {
	if r.err != nil {
		return
	}
	s, err := readRedisSample(r.addr)
	if err != nil {
		r.err = err
		return
	}
	r.samples = append(r.samples, s)
}

// RedisReport is what a redis-server spent and did inside the window.
type RedisReport struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	// Appends counts XADD calls: with sse_proxy's store, one per event
	// appended to a stream.
	Appends uint64 `json:"appends"`
	// Commands counts every command but INFO, those run by scripts
	// included; ByCommand splits them by name.
	Commands          uint64            `json:"commands"`
	ByCommand         map[string]uint64 `json:"by_command"`
	TotalProcessed    uint64            `json:"total_commands_processed"` // INFO stats' counter, for comparison
	CommandsPerSecond float64           `json:"commands_per_second"`
	CommandsPerAppend float64           `json:"commands_per_append"`
	CPUusPerAppend    float64           `json:"cpu_us_per_append"`
	CPUPer1kEvents    float64           `json:"cpu_seconds_per_1k_events"` // per 1,000 events the client received
}

// report compares the window's two samples; nil if they were not taken.
func (r *redisSampler) report(events uint64) *RedisReport {
	if len(r.samples) < 3 {
		return nil
	}
	a, b := r.samples[1], r.samples[2]
	rep := &RedisReport{PID: b.PID, ByCommand: map[string]uint64{}}
	if a.PID != b.PID {
		r.err = fmt.Errorf("redis-server restarted inside the window (pid %d, then %d)", a.PID, b.PID)
		return nil
	}
	rep.CPUSeconds = float64(b.CPUNanos-a.CPUNanos) / 1e9
	for cmd, n := range b.Calls {
		d := n - a.Calls[cmd]
		if d == 0 || cmd == "info" {
			continue
		}
		rep.ByCommand[cmd] = d
		rep.Commands += d
	}
	rep.Appends = rep.ByCommand["xadd"]
	rep.TotalProcessed = b.Total - a.Total
	if d := b.At.Sub(a.At).Seconds(); d > 0 {
		rep.CPUPercent = rep.CPUSeconds / d * 100
		rep.CommandsPerSecond = float64(rep.Commands) / d
	}
	if rep.Appends > 0 {
		rep.CommandsPerAppend = float64(rep.Commands) / float64(rep.Appends)
		rep.CPUusPerAppend = rep.CPUSeconds / float64(rep.Appends) * 1e6
	}
	if events > 0 {
		rep.CPUPer1kEvents = rep.CPUSeconds / float64(events) * 1000
	}
	return rep
}

// readRedisSample asks the server at addr (host:port, or a unix socket's
// path) for INFO all and reads its process's CPU time.
func readRedisSample(addr string) (redisSample, error) {
	info, err := redisInfo(addr)
	if err != nil {
		return redisSample{}, err
	}
	s, err := parseRedisInfo(info)
	if err != nil {
		return s, fmt.Errorf("redis %s: %w", addr, err)
	}
	if s.CPUNanos, err = readRunNanos(s.PID); err != nil {
		return s, fmt.Errorf("redis %s runs as pid %d, which this machine cannot read: %w", addr, s.PID, err)
	}
	s.At = time.Now()
	return s, nil
}

// readRunNanos sums the time on a CPU (the first field of schedstat) of
// every thread of process pid.
func readRunNanos(pid int) (uint64, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no /proc/%d/task/*/schedstat", pid)
	}
	var sum uint64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that just ended
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		n, err := strconv.ParseUint(first, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		sum += n
	}
	return sum, nil
}

// redisInfo sends INFO all and returns the bulk string answer.
func redisInfo(addr string) (string, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	conn, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n"); err != nil {
		return "", err
	}
	return readBulk(bufio.NewReader(conn))
}

// readBulk reads one RESP bulk string (or turns an error reply into an error).
func readBulk(r *bufio.Reader) (string, error) {
	head, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	head = strings.TrimRight(head, "\r\n")
	switch {
	case strings.HasPrefix(head, "-"):
		return "", errors.New("redis: " + head[1:])
	case !strings.HasPrefix(head, "$"):
		return "", fmt.Errorf("redis: unexpected answer %q", head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 || n > 16<<20 {
		return "", fmt.Errorf("redis: bad bulk length %q", head)
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// parseRedisInfo reads process_id, total_commands_processed and the
// cmdstat_* lines of an INFO answer.
func parseRedisInfo(info string) (redisSample, error) {
	s := redisSample{Calls: map[string]uint64{}}
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if !ok {
			continue
		}
		switch {
		case k == "process_id":
			s.PID, _ = strconv.Atoi(v)
		case k == "total_commands_processed":
			s.Total, _ = strconv.ParseUint(v, 10, 64)
		case strings.HasPrefix(k, "cmdstat_"):
			// calls=5,usec=12,usec_per_call=2.40,rejected_calls=0,failed_calls=0
			calls, _, _ := strings.Cut(v, ",")
			if n, ok := strings.CutPrefix(calls, "calls="); ok {
				s.Calls[strings.TrimPrefix(k, "cmdstat_")], _ = strconv.ParseUint(n, 10, 64)
			}
		}
	}
	if s.PID <= 0 {
		return s, errors.New("INFO has no process_id")
	}
	return s, nil
}
