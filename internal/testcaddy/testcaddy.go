// Package testcaddy runs a real Caddy, in process, for tests: a Caddyfile is
// adapted and loaded exactly as `caddy run` would, on free ports, with a
// self-signed certificate so that clients negotiate h2 (ALPN) and h3.
//
// Caddy runs one configuration per process, so tests that use this package
// must not run in parallel with each other.
package testcaddy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile" // the Caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"          // what a real caddy build has
	"github.com/quic-go/quic-go/http3"
	"go.uber.org/goleak"

	"github.com/sse-proxy/caddy-sse-proxy/internal/selfsigned"
)

// Instance is a running Caddy loaded from a Caddyfile.
type Instance struct {
	// Caddyfile is the text that was loaded, after substitutions.
	Caddyfile string
	// JSON is the adapted config.
	JSON []byte
}

var dataOnce sync.Once

// isolate keeps Caddy's data and config directories out of the user's home.
func isolate() {
	dataOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testcaddy-*")
		if err != nil {
			panic(err)
		}
		os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
		os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	})
}

// Start adapts caddyfile and runs it until the test ends. These tokens are
// replaced first: {CERT} and {KEY} by a self-signed certificate for
// localhost, 127.0.0.1 and ::1, and {STORAGE} by a temporary directory.
// Use GlobalOptions for the usual global block.
func Start(t testing.TB, caddyfile string) *Instance {
	t.Helper()
	isolate()
	cert, key := Cert(t)
	cf := strings.NewReplacer("{CERT}", cert, "{KEY}", key, "{STORAGE}", t.TempDir()).Replace(caddyfile)
	cfgJSON := Adapt(t, cf)
	if err := caddy.Load(cfgJSON, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return &Instance{Caddyfile: cf, JSON: cfgJSON}
}

// Reload loads caddyfile into the running Caddy, as `caddy reload` does.
func Reload(t testing.TB, caddyfile string) {
	t.Helper()
	cert, key := Cert(t)
	cf := strings.NewReplacer("{CERT}", cert, "{KEY}", key, "{STORAGE}", t.TempDir()).Replace(caddyfile)
	if err := caddy.Load(Adapt(t, cf), true); err != nil {
		t.Fatalf("reloading config: %v", err)
	}
}

// Adapt turns a Caddyfile into JSON, failing the test on any error or
// warning.
func Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	out, warnings, err := AdaptErr(caddyfile)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Fatalf("adapting Caddyfile: warning: %s", w.String())
		}
	}
	return out
}

// AdaptErr adapts a Caddyfile and returns the adapter's error, for tests of
// bad input.
func AdaptErr(caddyfile string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
}

// GlobalOptions is a global options block for tests: no admin endpoint, no
// persisted config, storage in a temporary directory, no trust-store
// installs and no OCSP (the certificate is self-signed), h1, h2 and h3.
const GlobalOptions = `{
	admin off
	persist_config off
	log {
		level WARN
	}
	storage file_system {STORAGE}
	skip_install_trust
	ocsp_stapling off
	auto_https disable_redirects
	servers {
		protocols h1 h2 h3
	}
}
`

var (
	certOnce          sync.Once
	certFile, keyFile string
	certErr           error
)

// Cert returns the paths of a self-signed certificate and key for
// localhost, 127.0.0.1 and ::1, made once per test binary.
func Cert(t testing.TB) (string, string) {
	t.Helper()
	certOnce.Do(func() {
		var certDir string
		certDir, certErr = os.MkdirTemp("", "testcaddy-cert-*")
		if certErr != nil {
			return
		}
		certFile, keyFile, certErr = selfsigned.Write(certDir)
	})
	if certErr != nil {
		t.Fatalf("making certificate: %v", certErr)
	}
	return certFile, keyFile
}

// FreePort returns a port on 127.0.0.1 that is free for both TCP and UDP
// right now (Caddy serves HTTP/3 on the UDP port of the same number).
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// Proto is an HTTP version a test client speaks.
type Proto string

// The protocols a client can speak.
const (
	H1 Proto = "HTTP/1.1"
	H2 Proto = "HTTP/2.0"
	H3 Proto = "HTTP/3.0"
)

// Protos lists every protocol, for table tests.
var Protos = []Proto{H1, H2, H3}

// Client returns an HTTPS client that speaks only p and trusts any
// certificate. Every connection it made is closed when the test ends, idle
// or not, so that no server goroutine outlives the test.
func Client(t testing.TB, p Proto) *http.Client {
	t.Helper()
	tlsConf := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // a test certificate
	switch p {
	case H1, H2:
		tlsConf.NextProtos = []string{"http/1.1"}
		if p == H2 {
			tlsConf.NextProtos = []string{"h2"}
		}
		var mu sync.Mutex
		var conns []net.Conn
		dialer := &tls.Dialer{Config: tlsConf}
		tr := &http.Transport{
			DisableCompression: true,
			ForceAttemptHTTP2:  p == H2,
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err == nil {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
				}
				return c, err
			},
		}
		t.Cleanup(func() {
			tr.CloseIdleConnections()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		return &http.Client{Transport: tr}
	case H3:
		tlsConf.NextProtos = []string{http3.NextProtoH3}
		tr := &http3.Transport{TLSClientConfig: tlsConf}
		t.Cleanup(func() { tr.Close() })
		return &http.Client{Transport: tr}
	}
	t.Fatalf("unknown protocol %q", p)
	return nil
}

// LeakCheck fails the test if goroutines started during it are still
// running once it has cleaned up. Call it first in a test, so that its
// check runs after every other cleanup (Caddy's stop among them).
func LeakCheck(t *testing.T) {
	t.Helper()
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, IgnoredGoroutines...)
	t.Cleanup(func() {
		if t.Failed() {
			return // the failure is the news; a leak report would bury it
		}
		// Caddy shuts its servers down in the background after Stop
		// returns: give them a few seconds before calling it a leak.
		deadline := time.Now().Add(10 * time.Second)
		for goleak.Find(opts...) != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		goleak.VerifyNone(t, opts...)
	})
}

// IgnoredGoroutines are process-wide goroutines of Caddy and its libraries
// that outlive any one config by design.
var IgnoredGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*Cache).maintainAssets"),
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.(*filteringCore).Write"),
	// The file writer of a config's default logger stays open until the
	// next config replaces that logger.
	goleak.IgnoreAnyFunction("github.com/DeRuina/timberjack.(*Logger).millRun"),
}
