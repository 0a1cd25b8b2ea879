// Package redistest runs a real redis-server for tests: on a unix socket in
// the test's temporary directory (and, when asked, on a free loopback TCP
// port), without persistence, stopped by its process id when the test ends.
//
// A machine without redis-server skips the test with a message saying so;
// with CI=true it fails instead, so that CI never passes by skipping.
package redistest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process that can be killed, paused and
// started again at the same address. Its methods are safe for concurrent
// use.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	socket  string // unix socket path
	tcpPort int    // 0: no TCP listener
	args    []string

	mu  sync.Mutex // guards cmd; held while a process starts or stops (waits for it, no network I/O); no other lock is taken under it
	cmd *exec.Cmd  // the running process; nil while stopped
}

// Option changes how Start runs the server.
type Option func(*Server)

// WithTCP makes the server listen on a free loopback TCP port as well.
func WithTCP() Option {
	return func(s *Server) { s.tcpPort = -1 }
}

// WithArgs passes more command-line arguments, e.g. "--requirepass", "x".
func WithArgs(args ...string) Option {
	return func(s *Server) { s.args = append(s.args, args...) }
}

// Start runs redis-server for t and registers its end with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not on PATH (Debian: apt-get install -y redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dir: dir, socket: filepath.Join(dir, "redis.sock")}
	for _, o := range opts {
		o(s)
	}
	if s.tcpPort < 0 {
		s.tcpPort = freePort(t)
	}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's address as the redis store's configuration writes
// it: the unix socket's absolute path.
func (s *Server) Addr() string { return s.socket }

// TCPAddr is the loopback host:port, or "" without WithTCP.
func (s *Server) TCPAddr() string {
	if s.tcpPort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(s.tcpPort)
}

// Start runs the server again after Stop or Kill: empty, at the same
// address. It does nothing while the server runs.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	_ = os.Remove(s.socket)
	args := []string{
		"--save", "", "--appendonly", "no",
		"--dir", s.dir,
		"--unixsocket", s.socket, "--unixsocketperm", "700",
		"--port", strconv.Itoa(s.tcpPort), "--bind", "127.0.0.1",
		"--logfile", filepath.Join(s.dir, "redis.log"),
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.socket); err == nil || strings.HasPrefix(err.Error(), "unexpected answer \"-NOAUTH") {
			return
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.stopLocked(syscall.SIGKILL)
			s.t.Fatalf("redis-server did not answer PING within 10s: %v\n%s", err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends PING over the socket and waits for +PONG.
func ping(socket string) error {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("unexpected answer %q", buf[:n])
	}
	return nil
}

// Stop ends the server (SIGTERM, then SIGKILL after 5s) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
}

// Kill ends the server with SIGKILL and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

// stopLocked signals the process and reaps it; s.mu is held.
func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	p := s.cmd.Process
	_ = p.Signal(syscall.SIGCONT) // a paused server cannot handle SIGTERM
	_ = p.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.Kill()
		<-done
	}
	s.cmd = nil
}

// Pause stops the process with SIGSTOP: it keeps its connections but
// answers nothing until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Errorf("redistest: signal %v to a stopped server", sig)
		return
	}
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("redistest: signal %v: %v", sig, err)
	}
}
