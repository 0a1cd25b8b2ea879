package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// procSet tracks every process the comparison starts so that all of them
// are stopped at the end, on failure and on a signal alike.
type procSet struct {
	mu    sync.Mutex
	procs map[*proc]bool
	pin   bool // run processes under taskset
}

// proc is one started process, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// start runs bin with args, pinned to cpu when pinning is on. Output goes to
// stdout and stderr (nil discards).
func (ps *procSet) start(name string, cpu int, env []string, stdout, stderr io.Writer, bin string, args ...string) (*proc, error) {
	if ps.pin {
		args = append([]string{"-c", strconv.Itoa(cpu), bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), env...)
	// Own process group: a terminal ctrl-C reaches only us and we stop the
	// children in order. Pdeathsig kills a child if we die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.procs == nil {
		ps.procs = map[*proc]bool{}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	ps.procs[p] = true
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		ps.mu.Lock()
		delete(ps.procs, p)
		ps.mu.Unlock()
	}()
	return p, nil
}

// pid is the process id (taskset execs the program, so it is the program's).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has already ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "compare: %s (pid %d) did not exit after SIGKILL\n", p.name, pgid)
	}
}

// wait waits for the process to end by itself, up to timeout; then it is killed.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.stop(time.Second)
		return errors.New(p.name + " timed out and was killed")
	}
}

// stopAll stops every process still running.
func (ps *procSet) stopAll() {
	ps.mu.Lock()
	running := make([]*proc, 0, len(ps.procs))
	for p := range ps.procs {
		running = append(running, p)
	}
	ps.mu.Unlock()
	for _, p := range running {
		p.stop(3 * time.Second)
	}
}
