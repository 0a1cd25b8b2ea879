package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// TestDemoPageShowsEventsOverH2: the README's demo, as a user runs it: open
// the page and see live events at once (the public stream, no error),
// then press "Log in" and see the private stream's events, with HTTP/2 as
// the protocol.
func TestDemoPageShowsEventsOverH2(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *engine) {
		base := startDemo(t, buildDemo(t))
		page := newTab(t, e)
		page.navigate(base + "/")

		// What the page shows, read from its DOM.
		type shown struct {
			Rows        int    `json:"rows"`        // rows in the events table
			FirstID     string `json:"firstID"`     // id column of the oldest row
			Stream      string `json:"stream"`      // public or private
			State       string `json:"state"`       // EventSource state
			Errors      string `json:"errors"`      // EventSource errors so far
			Hint        string `json:"hint"`        // the message under the buttons
			Proto       string `json:"proto"`       // the protocol Caddy served
			ProtoPage   string `json:"protoPage"`   // nextHopProtocol of the page
			Session     string `json:"session"`     // whether the cookie is there
			ProtoStream string `json:"protoStream"` // nextHopProtocol of a finished stream
		}
		const read = `(() => {
			const text = (id) => document.getElementById(id).textContent;
			const rows = document.querySelectorAll("#events tr");
			return {
				rows: rows.length,
				firstID: rows.length ? rows[rows.length - 1].cells[1].textContent : "",
				stream: text("stream"), state: text("state"), errors: text("errors"), hint: text("hint"),
				proto: text("proto"), protoPage: text("proto-page"),
				session: text("session"), protoStream: text("proto-stream"),
			};
		})()`
		waitShown := func(what string, cond func(shown) bool) shown {
			t.Helper()
			var got shown
			deadline := time.Now().Add(20 * time.Second)
			for {
				page.eval(read, &got)
				if cond(got) {
					return got
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: the page shows %+v", what, got)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}

		// The first screen: live events, nothing red.
		got := waitShown("two events on the public stream", func(s shown) bool {
			return s.Rows >= 2 && s.Proto != "–"
		})
		t.Logf("before logging in the demo page shows %+v", got)
		if got.Stream != "public" || got.State != "OPEN" || got.Errors != "0" || got.Hint != "" || got.Session != "absent" {
			t.Errorf("first screen shows %+v; want the public stream OPEN, no errors, no hint, no session", got)
		}

		page.click("#login")
		got = waitShown("two events on the private stream", func(s shown) bool {
			return s.Stream == "private" && s.Session == "present" && s.State == "OPEN" && s.Rows >= got.Rows+2
		})
		t.Logf("after logging in the demo page shows %+v", got)
		if got.Errors != "0" || got.FirstID == "" {
			t.Errorf("page shows %+v; want no errors, events with ids", got)
		}
		want := nextHopProtocol[e.name]
		if got.Proto != "HTTP/2.0" || (want != "" && got.ProtoPage != want) {
			t.Errorf("page shows protocol %q (page: %q); want HTTP/2.0 (%s)", got.Proto, got.ProtoPage, want)
		}
		// Filled in once a stream request has ended (the public stream,
		// when the page switched to the private one).
		if want != "" && got.ProtoStream != "–" && got.ProtoStream != want {
			t.Errorf("page shows stream protocol %q, want %s", got.ProtoStream, want)
		}
	})
}

var demoBuild struct {
	once sync.Once
	path string
	err  error
}

// buildDemo builds examples/demo once per test binary, with the race
// detector when this binary has it (so the compiled packages are reused).
func buildDemo(t *testing.T) string {
	t.Helper()
	demoBuild.once.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			demoBuild.err = fmt.Errorf("building the demo needs the go command on PATH: %v", err)
			return
		}
		path := filepath.Join(workDir, "demo")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/sse-proxy/caddy-sse-proxy/examples/demo")
		start := time.Now()
		out, err := exec.Command(goCmd, args...).CombinedOutput()
		if err != nil {
			demoBuild.err = fmt.Errorf("go %v: %v\n%s", args, err, out)
			return
		}
		t.Logf("built the demo in %v", time.Since(start).Round(time.Millisecond))
		demoBuild.path = path
	})
	if demoBuild.err != nil {
		t.Fatal(demoBuild.err)
	}
	return demoBuild.path
}

// startDemo runs the demo binary on a free port until the test ends and
// returns its URL. It is stopped with an interrupt, as a user stops it,
// and killed if the test failed; it must exit cleanly (with -race, a data
// race makes it exit 66).
func startDemo(t *testing.T, bin string) string {
	t.Helper()
	home := t.TempDir()
	addr := fmt.Sprintf("localhost:%d", testcaddy.FreePort(t))
	cmd := exec.Command(bin, "-listen", addr, "-storage", filepath.Join(home, "storage"), "-log-level", "ERROR")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	output := &tail{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error // set before exited is closed
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			_ = cmd.Process.Kill()
			<-exited
			t.Logf("demo output:\n%s", output)
			return
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
			if exitErr != nil {
				t.Errorf("demo exited with %v after an interrupt:\n%s", exitErr, output)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("demo still running 15 s after an interrupt; killed it:\n%s", output)
		}
	})

	url := "https://" + addr
	if err := waitUp(url+"/", exited); err != nil {
		if errors.Is(err, errExited) {
			err = fmt.Errorf("%w: %v", err, exitErr)
		}
		t.Fatalf("demo: %v\n%s", err, output)
	}
	return url
}

var errExited = errors.New("exited before answering")

// waitUp polls url until it answers 200; Caddy gets the certificate from
// its local CA in the background, so the first handshakes can fail.
func waitUp(url string, exited <-chan struct{}) error {
	client := &http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the demo's local CA
			DisableKeepAlives: true,
		},
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errExited
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not answering after 60 s: %v", url, last)
}
