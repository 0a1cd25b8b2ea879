package testcluster

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

// caddyBuild is the caddy binary of this test binary, built once.
var caddyBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildCaddy builds cmd/caddy once per test binary, with the race detector
// when this binary has it, and returns the binary's path.
func BuildCaddy(t testing.TB) string {
	t.Helper()
	path, err := buildCaddy(t)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func buildCaddy(t testing.TB) (string, error) {
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
	return caddyBuild.path, caddyBuild.err
}

// Instance is one Caddy of a cluster, run as its own process.
type Instance struct {
	// Name names the instance in messages (caddy-a, ...).
	Name string
	// URL is the instance's https origin, such as https://127.0.0.1:4321;
	// its stream is at any path but /health, such as URL + "/feed".
	URL string
	// Admin is the admin API's address (host:port, plain HTTP).
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

// StartInstance runs caddy with site (a site block in which {PORT}, {CERT}
// and {KEY} are replaced; see Site) until the test ends, and waits until it
// answers. At the end of the test it is stopped with an interrupt and must
// then exit cleanly, unless the test killed it.
func StartInstance(t testing.TB, name, site string) *Instance {
	t.Helper()
	in, err := startInstance(t, name, site)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// startInstance is StartInstance for any goroutine: it returns its error.
func startInstance(t testing.TB, name, site string) (*Instance, error) {
	bin, err := buildCaddy(t)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	cert, key := testcaddy.Cert(t)
	port := testcaddy.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t))
	cf := strings.NewReplacer("{ADMIN}", admin, "{STORAGE}", filepath.Join(dir, "storage"),
		"{PORT}", fmt.Sprint(port), "{CERT}", cert, "{KEY}", key).Replace(globalOptions + site)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	in := &Instance{Name: name, URL: fmt.Sprintf("https://127.0.0.1:%d", port), Admin: admin,
		out: &tail{max: 32 << 10}, exited: make(chan struct{})}
	in.cmd = exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	in.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
	if err := in.cmd.Start(); err != nil {
		return nil, err
	}
	// Owned by the instance: it ends when the process does, which stop
	// (a cleanup of the test) makes sure of.
	go func() {
		in.err = in.cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() { in.stop(t) })
	if err := in.waitUp(); err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", name, err, in.out)
	}
	return in, nil
}

// stop interrupts the instance, as an operator stops it, and reports an
// unclean exit (a data race exits 66). A killed instance is only reaped.
func (in *Instance) stop(t testing.TB) {
	select {
	case <-in.exited:
		if in.err != nil && !in.killed() {
			t.Errorf("%s exited with %v:\n%s", in.Name, in.err, in.out)
		}
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGCONT) // a paused one must run to stop
	_ = in.cmd.Process.Signal(os.Interrupt)
	select {
	case <-in.exited:
		if in.err != nil {
			t.Errorf("%s exited with %v after an interrupt:\n%s", in.Name, in.err, in.out)
		} else if t.Failed() {
			t.Logf("%s output:\n%s", in.Name, in.out)
		}
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.exited
		t.Errorf("%s still running 20 s after an interrupt; killed it:\n%s", in.Name, in.out)
	}
}

// killed reports whether the process ended by SIGKILL.
func (in *Instance) killed() bool {
	var ee *exec.ExitError
	if errors.As(in.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// Kill ends the instance at once (SIGKILL): nothing of it says goodbye.
// It returns once the process is gone (its port refuses connections).
func (in *Instance) Kill(t testing.TB) {
	t.Helper()
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-in.exited
}

// Pause stops the instance's process (SIGSTOP) until Resume.
func (in *Instance) Pause(t testing.TB) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// Resume lets a paused instance run again (SIGCONT).
func (in *Instance) Resume(t testing.TB) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// Output is the last 32 KiB the process wrote to stdout and stderr.
func (in *Instance) Output() string { return in.out.String() }

// waitUp polls the admin endpoint until the instance has loaded its config.
func (in *Instance) waitUp() error {
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
	mu  sync.Mutex // guards b; held for a copy only, no I/O; a leaf lock
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
