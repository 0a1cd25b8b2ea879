package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// The tests in this file put sse_proxy in front of the legacy backends of
// examples/ — PHP-FPM running examples/php_fastcgi/sse.php, a Node http
// server, an Express app, a Flask app — each a real process that knows
// nothing about the proxy, behind a real Caddy loaded from the example's own
// Caddyfile. A Go HTTP/2 client and a page in each browser engine (Chromium,
// Firefox, WebKit; HTTP/2) read the stream side by side, and each test
// checks, for every client:
//
//   - events arrive as the backend writes them: nothing buffers them on the
//     way (each event's arrival against the send time the backend put in it);
//   - during the backend's silence the stream gets heartbeats (seen by the Go
//     client; the browser sees no error);
//   - none of the backend's connection-specific headers reach the client;
//   - the session cookie reaches the backend as "Authorization: Bearer";
//   - the backend killed with SIGKILL and started again mid-stream: no error
//     at the client and no gap in the ids (the backend resumes after
//     Last-Event-ID);
//   - clients that leave release the backend's worker (php-fpm's active
//     processes, the Node and Flask apps' count of open streams).

// The backends' pacing in these tests: bursts of burst events interval
// apart, then a silence of pause, with heartbeats every heartbeat.
const (
	interval  = 300 * time.Millisecond
	burst     = 6
	pause     = 2500 * time.Millisecond
	heartbeat = 500 * time.Millisecond

	// maxLateness bounds how long after the backend wrote an event it may
	// reach a client. Unbuffered it takes milliseconds; a buffer anywhere
	// on the path holds events for a burst (interval*burst) or more.
	maxLateness = time.Second
)

// legacyBackend is one running backend behind a running Caddy.
type legacyBackend struct {
	proc *proc
	// Origin is the Caddy site with the stream and the test page;
	// StreamURL is the stream.
	Origin, StreamURL string
	// token is the session cookie's value and the bearer token the backend
	// expects.
	token string
	// connHeaders are the connection-specific header fields the backend
	// sends when asked directly (nil when it cannot be asked directly).
	connHeaders []string
	// active reports how many streams the backend is serving.
	active func(t *testing.T) int
}

// pacingEnv is the environment that sets a backend's pacing and token.
func pacingEnv(token string) []string {
	return []string{
		"SSE_TOKEN=" + token,
		"SSE_INTERVAL_MS=" + strconv.Itoa(int(interval/time.Millisecond)),
		"SSE_BURST=" + strconv.Itoa(burst),
		"SSE_PAUSE_MS=" + strconv.Itoa(int(pause/time.Millisecond)),
	}
}

// newToken returns a fresh session token.
func newToken(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// exampleCaddyfile reads an example's Caddyfile and adapts it for a test:
// the global options of testcaddy first, the test certificate in the site,
// heartbeats at the test's pace. The example's {$ENV} placeholders are
// left to Caddy's adapter; set them with t.Setenv.
func exampleCaddyfile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	cf := string(b)
	for _, r := range [][2]string{
		{"heartbeat 10s", "heartbeat " + heartbeat.String()},
		{":localhost} {\n", ":localhost} {\n\ttls {CERT} {KEY}\n"},
	} {
		if !strings.Contains(cf, r[0]) {
			t.Fatalf("examples/%s: no %q to adapt for the test", name, r[0])
		}
		cf = strings.Replace(cf, r[0], r[1], 1)
	}
	return testcaddy.GlobalOptions + cf
}

// testdataDir is e2e/testdata, with the test page.
func testdataDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startPHPFPM runs Debian's php-fpm on a unix socket with
// examples/php_fastcgi/sse.php, and Caddy from that example's Caddyfile
// (sse_proxy before php_fastcgi). The pool's status page is served on a
// second, test-only site, for the count of busy workers.
func startPHPFPM(t *testing.T) *legacyBackend {
	t.Helper()
	bin, err := phpFPMBinary()
	needTool(t, "php-fpm", err)

	dir := t.TempDir()
	script, err := filepath.Abs(filepath.Join("..", "examples", "php_fastcgi", "sse.php"))
	if err != nil {
		t.Fatal(err)
	}
	// PHP_ROOT: the script and the test page, side by side.
	root := filepath.Join(dir, "www")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"sse.php":   script,
		"page.html": filepath.Join(testdataDir(t), "page.html"),
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}

	token := newToken(t)
	sock := filepath.Join(dir, "php-fpm.sock")
	var conf strings.Builder
	fmt.Fprintf(&conf, `[global]
pid = %s
error_log = /proc/self/fd/2
daemonize = no

[sse]
listen = %s
; One worker per open stream; the status page takes one more.
pm = static
pm.max_children = 6
pm.status_path = /fpm-status
catch_workers_output = yes
clear_env = yes
`, filepath.Join(dir, "php-fpm.pid"), sock)
	for _, kv := range pacingEnv(token) {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&conf, "env[%s] = %s\n", k, v)
	}
	confFile := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confFile, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "php-fpm", "unix", sock, func() *exec.Cmd {
		// -R: the CI machine runs the tests as root.
		return exec.Command(bin, "--nodaemonize", "--fpm-config", confFile, "--allow-to-run-as-root")
	})

	origin := fmt.Sprintf("https://localhost:%d", testcaddy.FreePort(t))
	status := fmt.Sprintf("http://127.0.0.1:%d", testcaddy.FreePort(t))
	t.Setenv("SITE", origin)
	t.Setenv("PHP_ROOT", root)
	t.Setenv("PHP_FPM", "unix/"+sock)
	// php-fpm answers its status page only when SCRIPT_NAME is its path and
	// SCRIPT_FILENAME names a file that exists (else cgi.fix_pathinfo
	// rewrites SCRIPT_NAME): an empty one, outside the app's root.
	statusRoot := filepath.Join(dir, "status")
	if err := os.Mkdir(statusRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(statusRoot, "fpm-status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cf := exampleCaddyfile(t, "php_fastcgi/Caddyfile") + fmt.Sprintf(`
# Test only: php-fpm's status page, straight from the pool.
%s {
	root * %s
	rewrite * /fpm-status
	reverse_proxy unix/%s {
		transport fastcgi {
			split /fpm-status
		}
	}
}
`, status, statusRoot, sock)
	testcaddy.Start(t, cf)

	return &legacyBackend{
		proc: p, Origin: origin, StreamURL: origin + "/sse.php", token: token,
		active: func(t *testing.T) int {
			var s struct {
				Active int `json:"active processes"`
			}
			getJSON(t, status+"/?json", &s)
			return s.Active - 1 // the worker answering the status request
		},
	}
}

// startHTTPBackend runs a backend that serves HTTP on a port of its own
// (the Node, Express and Flask examples), and Caddy from
// examples/backends/Caddyfile in front of it.
func startHTTPBackend(t *testing.T, name string, command func() *exec.Cmd) *legacyBackend {
	t.Helper()
	token := newToken(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testcaddy.FreePort(t))
	p := startProc(t, name, "tcp", addr, func() *exec.Cmd {
		cmd := command()
		cmd.Env = append(os.Environ(), pacingEnv(token)...)
		cmd.Env = append(cmd.Env, "PORT="+strings.TrimPrefix(addr, "127.0.0.1:"))
		return cmd
	})

	origin := fmt.Sprintf("https://localhost:%d", testcaddy.FreePort(t))
	t.Setenv("SITE", origin)
	t.Setenv("UPSTREAM", addr)
	t.Setenv("WWW", testdataDir(t))
	testcaddy.Start(t, exampleCaddyfile(t, "backends/Caddyfile"))

	b := &legacyBackend{
		proc: p, Origin: origin, StreamURL: origin + "/events", token: token,
		active: func(t *testing.T) int {
			var s struct {
				Streams int `json:"streams"`
			}
			getJSON(t, "http://"+addr+"/stats", &s)
			return s.Streams
		},
	}
	b.connHeaders = directConnHeaders(t, "http://"+addr+"/events", token)
	return b
}

// connectionSpecific are the header fields that belong to one HTTP/1.1
// connection and are forbidden in HTTP/2 and HTTP/3 responses (RFC 9113,
// 8.2.2).
var connectionSpecific = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

// directConnHeaders asks the backend itself for its stream over HTTP/1.1
// and returns the connection-specific fields of its answer, so that a test
// knows the backend does send what the proxy must remove.
func directConnHeaders(t *testing.T, url, token string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var found []string
	for _, k := range connectionSpecific {
		if k == "Transfer-Encoding" && len(resp.TransferEncoding) > 0 {
			found = append(found, k) // Go moves it out of Header
		} else if resp.Header.Get(k) != "" || (k == "Connection" && resp.Close) {
			found = append(found, k)
		}
	}
	return found
}

// getJSON GETs url and decodes its JSON body into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestPHPFPMBehindPHPFastcgi: examples/php_fastcgi — sse.php in Debian's
// php-fpm, sse_proxy as middleware before php_fastcgi.
func TestPHPFPMBehindPHPFastcgi(t *testing.T) {
	testcaddy.LeakCheck(t)
	checkLegacyBackend(t, startPHPFPM(t))
}

// TestNodeHTTPBackend: examples/backends/node-http, a server on Node's
// http module.
func TestNodeHTTPBackend(t *testing.T) {
	testcaddy.LeakCheck(t)
	node, err := nodeBinary()
	needTool(t, "node", err)
	b := startHTTPBackend(t, "node-http", func() *exec.Cmd {
		return exec.Command(node, filepath.Join("..", "examples", "backends", "node-http", "server.js"))
	})
	checkLegacyBackend(t, b)
}

// TestExpressBackend: examples/backends/express, an Express app (Express
// as pinned by its package-lock.json; .ci/run runs npm ci there).
func TestExpressBackend(t *testing.T) {
	testcaddy.LeakCheck(t)
	node, err := nodeBinary()
	needTool(t, "node", err)
	dir := filepath.Join("..", "examples", "backends", "express")
	_, err = os.Stat(filepath.Join(dir, "node_modules", "express", "package.json"))
	needTool(t, "Express (run: npm ci --prefix examples/backends/express)", err)
	b := startHTTPBackend(t, "express", func() *exec.Cmd {
		return exec.Command(node, filepath.Join(dir, "app.js"))
	})
	checkLegacyBackend(t, b)
}

// TestFlaskBackend: examples/backends/flask, a Flask app streaming from a
// generator, in Flask's own (Werkzeug) server.
func TestFlaskBackend(t *testing.T) {
	testcaddy.LeakCheck(t)
	python, err := flaskPython()
	needTool(t, "python3 with Flask", err)
	b := startHTTPBackend(t, "flask", func() *exec.Cmd {
		return exec.Command(python, filepath.Join("..", "examples", "backends", "flask", "app.py"))
	})
	checkLegacyBackend(t, b)
}
