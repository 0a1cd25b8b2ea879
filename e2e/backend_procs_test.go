package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file runs the legacy backends of examples/ as real processes: php-fpm
// from Debian, node, python3 with Flask.

// needTool skips the test when a backend's runtime is missing, or fails it
// in CI (CI=true), where everything .ci/run installs must be there.
func needTool(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is needed in CI: %v", what, err)
	}
	t.Skipf("skipping: no %s (%v)", what, err)
}

// phpFPMBinary finds Debian's php-fpm (/usr/sbin/php-fpmX.Y), the newest if
// there are several; $E2E_PHP_FPM overrides it.
func phpFPMBinary() (string, error) {
	if p := os.Getenv("E2E_PHP_FPM"); p != "" {
		_, err := os.Stat(p)
		return p, err
	}
	found, _ := filepath.Glob("/usr/sbin/php-fpm*")
	if len(found) == 0 {
		return "", errors.New("no /usr/sbin/php-fpm*; on Debian: apt-get install php-fpm")
	}
	sort.Strings(found)
	return found[len(found)-1], nil
}

// nodeBinary finds node.
func nodeBinary() (string, error) {
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%v; on Debian: apt-get install nodejs", err)
	}
	return p, nil
}

// flaskPython finds a python3 that can import flask: Debian's first (the
// python3-flask package), then the one on PATH.
func flaskPython() (string, error) {
	var tried []string
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if out, err := exec.Command(path, "-c", "import flask").CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, out))
			continue
		}
		return path, nil
	}
	return "", fmt.Errorf("no python3 with flask (tried %q); on Debian: apt-get install python3-flask", tried)
}

// proc is one backend process that a test can kill and start again.
type proc struct {
	t       *testing.T
	name    string
	command func() *exec.Cmd // a fresh command for every start
	addr    string           // "tcp" or "unix" address it serves on once ready
	network string

	mu  sync.Mutex // guards cmd, done and out; never held while waiting
	cmd *exec.Cmd
	// done is closed when cmd has exited.
	done chan struct{}
	out  *tail // stdout and stderr of every run
}

// startProc starts the process and waits until it accepts connections on
// addr. It is killed when the test ends, and its output is logged if the
// test failed.
func startProc(t *testing.T, name, network, addr string, command func() *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, name: name, command: command, network: network, addr: addr, out: &tail{max: 16 << 10}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out)
		}
	})
	p.start()
	return p
}

// start runs the command and waits until it is ready.
func (p *proc) start() {
	p.t.Helper()
	cmd := p.command()
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Its own process group, so that kill takes php-fpm's workers too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout(p.network, p.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			p.t.Fatalf("%s exited before serving on %s: %s\n%s", p.name, p.addr, cmd.ProcessState, p.out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not serving on %s after 20 s: %v\n%s", p.name, p.addr, err, p.out)
		}
	}
}

// kill sends SIGKILL to the process group, as a crash or an OOM kill would
// end it, and waits for the process to exit.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s (pid %d) still running 10 s after SIGKILL", p.name, cmd.Process.Pid)
	}
}

// restart kills the process and starts it again at once.
func (p *proc) restart() {
	p.t.Helper()
	p.kill()
	p.start()
}
