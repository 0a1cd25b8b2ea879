package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

var caddyBuild struct {
	once sync.Once
	path string
	err  error
}

// buildCaddy builds cmd/caddy once per test binary, with the race detector
// when this binary has it.
func buildCaddy(t *testing.T) string {
	t.Helper()
	caddyBuild.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			caddyBuild.err = fmt.Errorf("building caddy needs the go command on PATH: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "sse-proxy-cluster-*")
		if err != nil {
			caddyBuild.err = err
			return
		}
		path := filepath.Join(dir, "caddy")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/sse-proxy/caddy-sse-proxy/cmd/caddy")
		start := time.Now()
		if out, err := exec.Command(goCmd, args...).CombinedOutput(); err != nil {
			caddyBuild.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
			return
		}
		t.Logf("built caddy in %v", time.Since(start).Round(time.Millisecond))
		caddyBuild.path = path
	})
	if caddyBuild.err != nil {
		t.Fatal(caddyBuild.err)
	}
	return caddyBuild.path
}

// instance is one Caddy of the cluster, run as its own process.
type instance struct {
	name string
	// URL is the stream's https URL on this instance.
	URL string
	// Admin is the admin API's address.
	Admin string

	cmd    *exec.Cmd
	out    *tail
	exited chan struct{}
	err    error // cmd.Wait's, set before exited is closed
}

// globalOptions are those of testcaddy's, with an admin endpoint of the
// instance's own (the cluster's admin route is tested through it).
const globalOptions = `{
	admin {ADMIN}
	persist_config off
	log {
		level WARN
	}
	storage file_system {STORAGE}
	skip_install_trust
	ocsp_stapling off
	auto_https disable_redirects
	servers {
		protocols h1 h2
	}
}
`

// startInstance runs caddy with site (a site block in which {PORT}, {CERT}
// and {KEY} are replaced) until the test ends. It is stopped with an
// interrupt and must then exit cleanly, unless the test killed it.
func startInstance(t *testing.T, name, site string) *instance {
	t.Helper()
	bin := buildCaddy(t)
	dir := t.TempDir()
	cert, key := testcaddy.Cert(t)
	port := testcaddy.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t))
	cf := strings.NewReplacer("{ADMIN}", admin, "{STORAGE}", filepath.Join(dir, "storage"),
		"{PORT}", fmt.Sprint(port), "{CERT}", cert, "{KEY}", key).Replace(globalOptions + site)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &instance{name: name, URL: fmt.Sprintf("https://127.0.0.1:%d", port), Admin: admin,
		out: &tail{max: 32 << 10}, exited: make(chan struct{})}
	in.cmd = exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	in.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		in.err = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() { in.stop(t) })
	if err := in.waitUp(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, in.out)
	}
	return in
}

// stop interrupts the instance, as an operator stops it, and reports an
// unclean exit (a data race exits 66). A killed instance is only reaped.
func (in *instance) stop(t *testing.T) {
	select {
	case <-in.exited:
		if in.err != nil && !in.killed() {
			t.Errorf("%s exited with %v:\n%s", in.name, in.err, in.out)
		}
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGCONT) // a paused one must run to stop
	_ = in.cmd.Process.Signal(os.Interrupt)
	select {
	case <-in.exited:
		if in.err != nil {
			t.Errorf("%s exited with %v after an interrupt:\n%s", in.name, in.err, in.out)
		} else if t.Failed() {
			t.Logf("%s output:\n%s", in.name, in.out)
		}
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
		t.Errorf("%s still running 20 s after an interrupt; killed it:\n%s", in.name, in.out)
	}
}

func (in *instance) killed() bool {
	var ee *exec.ExitError
	if errors.As(in.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// Kill ends the instance at once (SIGKILL): nothing of it says goodbye.
func (in *instance) Kill(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-in.exited
}

// Pause stops the instance's process (SIGSTOP) until Resume.
func (in *instance) Pause(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume lets a paused instance run again (SIGCONT).
func (in *instance) Resume(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// waitUp polls the admin endpoint until the instance has loaded its config.
func (in *instance) waitUp() error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + in.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The site's listener is up once the config loaded.
				tc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
					TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test certificate
				r, err := tc.Head(in.URL + "/health")
				if err == nil {
					r.Body.Close()
					tc.CloseIdleConnections()
					return nil
				}
				last = err
			} else {
				last = errors.New(resp.Status)
			}
		} else {
			last = err
		}
		select {
		case <-in.exited:
			return fmt.Errorf("exited before answering: %v", in.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("not answering after 90 s: %v", last)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.b))
}
