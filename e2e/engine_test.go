package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// engine is one browser engine the scenarios run in, started once per test
// binary by TestMain: its goroutines predate every test's leak check.
type engine struct {
	name    string // chromium, firefox or webkit: the subtest's name
	version string // what the browser reported when it started
	missing string // why the engine is not installed, when it is not
	err     error  // the engine is installed but did not start
	started time.Duration

	// newDriver opens a tab: a page with no cookies, cache or connections
	// of an earlier test.
	newDriver func(ctx context.Context) (driver, error)
	// stop stops the browser and whatever runs it.
	stop func()
}

// driver is one tab of one engine, driven through that engine's
// automation protocol.
type driver interface {
	// navigate loads url and waits for its load event.
	navigate(ctx context.Context, url string) error
	// eval evaluates a JavaScript expression in the page, awaiting it if
	// it is a promise, and returns its value as JSON.
	eval(ctx context.Context, expr string) ([]byte, error)
	// click clicks the element selector (CSS) finds.
	click(ctx context.Context, selector string) error
	// close closes the tab.
	close()
}

// engines are the browser engines, in the order their subtests run.
var engines = []*engine{
	{name: "chromium"},
	{name: "firefox"},
	{name: "webkit"},
}

// workDir holds what lives as long as the test binary: the browser
// profiles and the demo binary.
var workDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sse-proxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir

	startEngines()
	defer func() {
		for _, e := range engines {
			if e.stop != nil {
				e.stop()
			}
		}
	}()
	return m.Run()
}

// startEngines starts the engines that $E2E_ENGINES names (all three when
// it is empty), side by side: each takes a while on a busy machine.
func startEngines() {
	want := os.Getenv("E2E_ENGINES")
	var wg sync.WaitGroup
	for _, e := range engines {
		if want != "" && !strings.Contains(","+want+",", ","+e.name+",") {
			e.missing = "not in E2E_ENGINES=" + want
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			switch e.name {
			case "chromium":
				startChromium(e)
			case "firefox":
				startFirefox(e)
			case "webkit":
				startWebKit(e)
			}
			e.started = time.Since(start)
		}()
	}
	wg.Wait()
	for _, e := range engines {
		switch {
		case e.err != nil:
			fmt.Fprintf(os.Stderr, "e2e: %s did not start: %v\n", e.name, e.err)
		case e.missing == "":
			fmt.Fprintf(os.Stderr, "e2e: %s %s started in %v\n", e.name, e.version, e.started.Round(time.Millisecond))
		}
	}
}

// need skips the test when the engine is not installed, or fails it in CI
// (CI=true) or when the engine is there but broken. A failure names the
// engine.
func (e *engine) need(t *testing.T) {
	t.Helper()
	switch {
	case e.err != nil:
		t.Fatalf("%s: %v", e.name, e.err)
	case e.missing != "" && os.Getenv("CI") == "true" && !strings.HasPrefix(e.missing, "not in E2E_ENGINES"):
		t.Fatalf("browser tests need %s in CI: %s", e.name, e.missing)
	case e.missing != "":
		t.Skipf("skipping %s: %s", e.name, e.missing)
	}
}

// eachEngine runs scenario once per engine, as the subtest named after
// the engine (TestX/firefox). Each subtest skips (or fails, see need)
// without its engine, and checks for leaked goroutines once it has cleaned
// up.
func eachEngine(t *testing.T, scenario func(t *testing.T, e *engine)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			e.need(t)
			testcaddy.LeakCheck(t)
			scenario(t, e)
		})
	}
}
