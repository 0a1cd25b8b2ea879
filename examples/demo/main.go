// Command demo shows sse_proxy making a legacy SSE backend work for browsers
// over HTTP/2 and HTTP/3. One command, nothing to install:
//
//	go run ./examples/demo
//
// It starts, in this one process,
//
//   - the legacy backend of package legacy on a free loopback port: HTTP/1.1
//     only, "Authorization: Bearer" required, 20 s silences between bursts of
//     events, HTTP/1.1 connection headers on every response;
//   - Caddy with sse_proxy, configured by the embedded Caddyfile, serving
//     https://localhost:8443 with a certificate from Caddy's local CA;
//
// and serves a page (www/index.html) that shows the live events, the
// negotiated protocol and the EventSource state. Stop it with Ctrl-C.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sse-proxy/caddy-sse-proxy"
	"github.com/sse-proxy/caddy-sse-proxy/examples/legacy"
)

//go:embed Caddyfile
var caddyfile []byte

//go:embed www
var www embed.FS

// config is what run needs; main fills it from flags.
type config struct {
	// Listen is the site's host:port. The host must be a name or address
	// that resolves to this machine; the site listens only on its addresses.
	Listen string
	// StorageDir is where Caddy keeps its local CA and certificates.
	StorageDir string
	// LogLevel is the level of Caddy's own log (DEBUG, INFO, WARN, ERROR).
	LogLevel string
	// Upstream configures the legacy backend; run sets its Token.
	Upstream legacy.Options
	// Out receives the instructions for the user.
	Out io.Writer
	// Ready, if set, is called with the site's URL once it answers.
	Ready func(url string)
}

func main() {
	listen := flag.String("listen", "localhost:8443", "host:port to serve the demo on")
	storage := flag.String("storage", caddy.AppDataDir(), "directory for Caddy's local CA and certificates")
	logLevel := flag.String("log-level", "ERROR", "level of Caddy's log: DEBUG, INFO, WARN or ERROR")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, config{
		Listen:     *listen,
		StorageDir: *storage,
		LogLevel:   *logLevel,
		Out:        os.Stdout,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts the backend and Caddy, waits for ctx to end, then stops both.
func run(ctx context.Context, cfg config) error {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil || host == "" {
		return fmt.Errorf("-listen %q: want host:port, e.g. localhost:8443", cfg.Listen)
	}
	bind, err := localAddrs(host)
	if err != nil {
		return err
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "ERROR"
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}

	// The legacy backend, on a loopback port nobody else knows about.
	token := rand.Text()
	upstreamLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upstreamCtx, stopUpstream := context.WithCancel(context.Background())
	upstreamDone := make(chan error, 1)
	opts := cfg.Upstream
	opts.Token = token
	go func() { upstreamDone <- legacy.Serve(upstreamCtx, upstreamLn, opts) }()
	defer func() {
		stopUpstream()
		<-upstreamDone
	}()

	// The page, written to disk for file_server.
	wwwDir, err := os.MkdirTemp("", "sse-proxy-demo-www-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(wwwDir)
	page, err := fs.Sub(www, "www")
	if err != nil {
		return err
	}
	if err := os.CopyFS(wwwDir, page); err != nil {
		return err
	}

	env := map[string]string{
		"DEMO_SITE":      cfg.Listen,
		"DEMO_BIND":      strings.Join(bind, " "),
		"DEMO_UPSTREAM":  upstreamLn.Addr().String(),
		"DEMO_TOKEN":     token,
		"DEMO_WWW":       filepath.ToSlash(wwwDir),
		"DEMO_STORAGE":   filepath.ToSlash(cfg.StorageDir),
		"DEMO_LOG_LEVEL": cfg.LogLevel,
	}
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	// Clone: the adapter expands {$ENV} placeholders in place.
	input := bytes.Clone(caddyfile)
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(input, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapting the demo Caddyfile: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintln(cfg.Out, "Caddyfile warning:", w.String())
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	defer func() { _ = caddy.Stop() }()

	url := "https://" + cfg.Listen
	if err := waitForSite(ctx, url+"/status"); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return err
	}
	printInstructions(cfg.Out, url, token, cfg.StorageDir)
	if cfg.Ready != nil {
		cfg.Ready(url)
	}

	<-ctx.Done()
	fmt.Fprintln(cfg.Out, "stopping")
	return nil
}

// localAddrs returns the addresses of host that this machine can listen on.
// Binding to those alone keeps the demo off the network: "localhost" gives
// 127.0.0.1 and, where IPv6 is available, ::1.
func localAddrs(host string) ([]string, error) {
	ips, err := net.LookupHost(host)
	if err != nil {
		return nil, fmt.Errorf("-listen host %q: %w", host, err)
	}
	var usable []string
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			continue // e.g. ::1 on a machine without IPv6
		}
		l.Close()
		usable = append(usable, ip)
	}
	if len(usable) == 0 {
		return nil, fmt.Errorf("-listen host %q: none of its addresses %v belongs to this machine", host, ips)
	}
	return usable, nil
}

// waitForSite polls url until it answers: Caddy issues the site's certificate
// in the background, so the first handshakes can fail.
func waitForSite(ctx context.Context, url string) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the local CA is not trusted here
			ForceAttemptHTTP2: true,
		},
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not come up: %v", url, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printInstructions(w io.Writer, url, token, storage string) {
	rootCert := filepath.Join(storage, "pki", "authorities", "local", "root.crt")
	fmt.Fprintf(w, `
sse_proxy demo running: open %s

The certificate comes from Caddy's local CA, which this demo does not install,
so the browser warns once; accept it, or import %s.

Watch the raw stream, heartbeats included:
  curl -k -N --http2 -b demo_session=%s %s/events

Ctrl-C to stop.
`, url, rootCert, token, url)
}
