package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Firefox and WebKit are driven from node/bridge.mjs, with the maintained
// Node clients of their automation protocols: puppeteer-core speaks
// WebDriver BiDi to Firefox, the `webdriver` package speaks W3C WebDriver
// to WebKitWebDriver. Go has no maintained BiDi client, and one protocol
// path for both engines keeps this side small. The tests keep every
// assertion in Go; the bridge only opens tabs, navigates, evaluates and
// clicks.

// Where Debian puts the engines; $E2E_FIREFOX and $E2E_MINIBROWSER
// override the browsers.
const (
	defaultFirefox     = "/usr/bin/firefox-esr"
	minibrowserGlob    = "/usr/lib/*-linux-gnu/webkit2gtk-4.*/MiniBrowser"
	webkitWebDriverCmd = "WebKitWebDriver"
)

// nodeDir is the npm project of the bridge and the client libraries.
const nodeDir = "node"

// needNode reports why the bridge cannot run, or "".
func needNode() string {
	if _, err := exec.LookPath("node"); err != nil {
		return "no node on PATH; on Debian: apt-get install nodejs npm"
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "puppeteer-core")); err != nil {
		return "the bridge's packages are not installed: run npm ci --ignore-scripts in e2e/node"
	}
	return ""
}

// startFirefox starts Firefox through the bridge, or records on e why it
// could not.
func startFirefox(e *engine) {
	path := defaultFirefox
	if p := os.Getenv("E2E_FIREFOX"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		e.missing = fmt.Sprintf("no Firefox at %s (%v); on Debian: apt-get install firefox-esr", path, err)
		return
	}
	if m := needNode(); m != "" {
		e.missing = m
		return
	}
	profile, err := os.MkdirTemp(workDir, "firefox-")
	if err != nil {
		e.err = err
		return
	}
	b, err := startBridge(nil)
	if err != nil {
		e.err = err
		return
	}
	if err := b.call(context.Background(), 3*time.Minute, map[string]any{
		"op": "launch", "engine": "firefox", "executablePath": path, "profile": profile,
	}, &e.version); err != nil {
		b.stop()
		e.err = fmt.Errorf("starting %s: %v", path, err)
		return
	}
	e.version = strings.TrimPrefix(e.version, "firefox/")
	e.newDriver, e.stop = b.newTab, b.stop
}

// startWebKit starts Xvfb, WebKitWebDriver on it and, through the bridge,
// a MiniBrowser session, or records on e why it could not.
func startWebKit(e *engine) {
	browser := os.Getenv("E2E_MINIBROWSER")
	if browser == "" {
		found, _ := filepath.Glob(minibrowserGlob)
		if len(found) == 0 {
			e.missing = "no MiniBrowser at " + minibrowserGlob + "; on Debian: apt-get install webkit2gtk-driver"
			return
		}
		browser = found[len(found)-1]
	}
	driverPath, err := exec.LookPath(webkitWebDriverCmd)
	if err != nil {
		e.missing = "no WebKitWebDriver on PATH; on Debian: apt-get install webkit2gtk-driver"
		return
	}
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		e.missing = "no Xvfb on PATH (MiniBrowser has no headless mode); on Debian: apt-get install xvfb"
		return
	}
	if m := needNode(); m != "" {
		e.missing = m
		return
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	display, stopX, err := startXvfb(xvfb)
	if err != nil {
		e.err = err
		return
	}
	stops = append(stops, stopX)
	port, err := freeTCPPort()
	if err != nil {
		stopAll()
		e.err = err
		return
	}
	driverOut := &tail{max: 16 << 10}
	drv := exec.Command(driverPath, "--host=127.0.0.1", "--port="+strconv.Itoa(port))
	drv.Env = append(os.Environ(), "DISPLAY="+display)
	drv.Stdout, drv.Stderr = driverOut, driverOut
	if err := drv.Start(); err != nil {
		stopAll()
		e.err = err
		return
	}
	stops = append(stops, func() { _ = drv.Process.Kill(); _ = drv.Wait() })
	if err := waitListening(fmt.Sprintf("127.0.0.1:%d", port), 30*time.Second); err != nil {
		stopAll()
		e.err = fmt.Errorf("WebKitWebDriver: %v\n%s", err, driverOut)
		return
	}
	b, err := startBridge([]string{"DISPLAY=" + display})
	if err != nil {
		stopAll()
		e.err = err
		return
	}
	stops = append(stops, b.stop)
	if err := b.call(context.Background(), 3*time.Minute, map[string]any{
		"op": "launch", "engine": "webkit", "executablePath": browser, "port": port,
	}, &e.version); err != nil {
		stopAll()
		e.err = fmt.Errorf("starting %s through WebKitWebDriver: %v\n%s", browser, err, driverOut)
		return
	}
	e.newDriver, e.stop = b.newTab, stopAll
}

// startXvfb starts an X server on a free display (Xvfb picks it and
// writes its number to -displayfd) and returns the display and the
// function that stops the server.
func startXvfb(path string) (display string, stop func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	out := &tail{max: 4 << 10}
	cmd := exec.Command(path, "-displayfd", "3", "-nolisten", "tcp", "-screen", "0", "1280x1024x24")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		got <- strings.TrimSpace(line)
	}()
	select {
	case n := <-got:
		if n != "" {
			return ":" + n, stop, nil
		}
	case <-time.After(30 * time.Second):
	}
	stop()
	return "", nil, fmt.Errorf("Xvfb did not report its display:\n%s", out)
}

// freeTCPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until something accepts connections on addr.
func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listening on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bridge is a running node/bridge.mjs.
type bridge struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	output *tail         // the bridge's stderr: its and the browser's logs
	done   chan struct{} // closed when the bridge's stdout ends

	mu      sync.Mutex // guards next, pending and writes to stdin; not held while waiting
	next    int
	pending map[int]chan bridgeReply
}

type bridgeReply struct {
	Value json.RawMessage `json:"value"`
	Error string          `json:"error"`
}

// startBridge starts the bridge with env added to the environment.
func startBridge(env []string) (*bridge, error) {
	b := &bridge{output: &tail{max: 32 << 10}, done: make(chan struct{}), pending: map[int]chan bridgeReply{}}
	b.cmd = exec.Command("node", "bridge.mjs")
	b.cmd.Dir = nodeDir
	b.cmd.Env = append(os.Environ(), env...)
	b.cmd.Stderr = b.output
	stdin, err := b.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	b.stdin = stdin
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the node bridge: %v", err)
	}
	go b.read(stdout)
	return b, nil
}

// read hands each answer to the call waiting for it.
func (b *bridge) read(stdout io.Reader) {
	defer close(b.done)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var msg struct {
			ID int `json:"id"`
			bridgeReply
		}
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		b.mu.Lock()
		ch := b.pending[msg.ID]
		delete(b.pending, msg.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- msg.bridgeReply
		}
	}
}

// call sends req (with its "op") and decodes the answer's value into out
// (nil to ignore it).
func (b *bridge) call(ctx context.Context, timeout time.Duration, req map[string]any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan bridgeReply, 1)
	b.mu.Lock()
	b.next++
	id := b.next
	req["id"] = id
	b.pending[id] = ch
	line, err := json.Marshal(req)
	if err == nil {
		_, err = b.stdin.Write(append(line, '\n'))
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("bridge: %v", err)
	}
	select {
	case r := <-ch:
		if r.Error != "" {
			return errors.New(r.Error)
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(r.Value, out)
	case <-b.done:
		return fmt.Errorf("the node bridge exited:\n%s", b.output)
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: no answer from the bridge: %v", req["op"], ctx.Err())
	}
}

// stop quits the browser and waits for the bridge to exit.
func (b *bridge) stop() {
	_ = b.call(context.Background(), 20*time.Second, map[string]any{"op": "quit"}, nil)
	b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
	}
	_ = b.cmd.Wait()
}

// newTab opens a tab.
func (b *bridge) newTab(ctx context.Context) (driver, error) {
	var id int
	if err := b.call(ctx, time.Minute, map[string]any{"op": "open"}, &id); err != nil {
		return nil, err
	}
	return &bridgeTab{b: b, id: id}, nil
}

// bridgeTab is a tab of the bridge's browser.
type bridgeTab struct {
	b  *bridge
	id int
}

// do runs op on the tab within ctx's deadline.
func (bt *bridgeTab) do(ctx context.Context, req map[string]any, out any) error {
	req["tab"] = bt.id
	return bt.b.call(ctx, time.Hour, req, out)
}

func (bt *bridgeTab) navigate(ctx context.Context, url string) error {
	return bt.do(ctx, map[string]any{"op": "navigate", "url": url}, nil)
}

func (bt *bridgeTab) eval(ctx context.Context, expr string) ([]byte, error) {
	// The bridge answers with the JSON text the page made.
	var text string
	if err := bt.do(ctx, map[string]any{"op": "eval", "expr": expr}, &text); err != nil {
		return nil, err
	}
	return []byte(text), nil
}

func (bt *bridgeTab) click(ctx context.Context, selector string) error {
	return bt.do(ctx, map[string]any{"op": "click", "selector": selector}, nil)
}

func (bt *bridgeTab) close() {
	_ = bt.b.call(context.Background(), 30*time.Second, map[string]any{"op": "close", "tab": bt.id}, nil)
}
