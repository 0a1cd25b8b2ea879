package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// defaultChromium is where Debian's chromium package puts the browser;
// $E2E_CHROMIUM overrides it.
const defaultChromium = "/usr/bin/chromium"

// startChromium starts Chromium, headless, driven over the DevTools
// protocol (chromedp), or records on e why it could not.
func startChromium(e *engine) {
	path := defaultChromium
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := os.Stat(path); err != nil {
		e.missing = fmt.Sprintf("no Chromium at %s (%v); on Debian: apt-get install chromium", path, err)
		return
	}
	profile, err := os.MkdirTemp(workDir, "chromium-")
	if err != nil {
		e.err = err
		return
	}
	output := &tail{max: 16 << 10}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(output),
	}
	for _, f := range []string{
		"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
		"disable-background-networking", "disable-component-update", "disable-sync",
		"ignore-certificate-errors",
		// Every tab runs its timers on time, even when it is not in front.
		"disable-background-timer-throttling", "disable-renderer-backgrounding",
	} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Do starts the browser and binds it to ctx: no timeout here.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(90 * time.Second):
		err = errors.New("not started after 90 s")
	}
	if err == nil {
		var v browser.GetVersionResult
		v, err = chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
		e.version = strings.TrimPrefix(v.Product, "HeadlessChrome/")
	}
	if err != nil {
		cancel()
		cancelAlloc()
		e.err = fmt.Errorf("starting %s: %v\n%s", path, err, output)
		return
	}
	e.newDriver = func(context.Context) (driver, error) {
		tctx, tcancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
		// The first Do opens the tab and binds it to tctx: no deadline.
		if err := chromedp.Do(tctx); err != nil {
			tcancel()
			return nil, err
		}
		return &chromiumTab{ctx: tctx, cancel: tcancel}, nil
	}
	e.stop = func() {
		// A graceful close, then the allocator waits for the process.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		cancelAlloc()
	}
}

// chromiumTab is a Chromium tab in a browser context of its own (like an
// incognito window).
type chromiumTab struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// within runs f on the tab under ctx's deadline.
func (c *chromiumTab) within(ctx context.Context, f func(ctx context.Context) error) error {
	tctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return f(tctx)
}

func (c *chromiumTab) navigate(ctx context.Context, url string) error {
	return c.within(ctx, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Navigate(url))
	})
}

func (c *chromiumTab) eval(ctx context.Context, expr string) ([]byte, error) {
	// chromedp refuses an undefined value: make it null, as the bridge does.
	expr = "Promise.resolve(" + expr + ").then((v) => v === undefined ? null : v)"
	var raw []byte
	err := c.within(ctx, func(ctx context.Context) error {
		var err error
		raw, err = chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
		return err
	})
	return raw, err
}

func (c *chromiumTab) click(ctx context.Context, selector string) error {
	return c.within(ctx, func(ctx context.Context) error {
		return chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector)))
	})
}

func (c *chromiumTab) close() { c.cancel() }
