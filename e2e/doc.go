// Package e2e holds end-to-end tests: real browsers against a real Caddy
// with sse_proxy, over HTTPS with HTTP/2. Every scenario runs in Debian's
// Chromium (headless, DevTools protocol via chromedp), Firefox ESR
// (headless, WebDriver BiDi via puppeteer-core) and WebKitGTK's MiniBrowser
// (W3C WebDriver via WebKitWebDriver, under Xvfb), as one subtest per
// engine; Firefox and WebKit are driven from node/bridge.mjs. Every test
// asserts on what a page observed: EventSource events, states and errors,
// resource timing, the DOM of the demo; the client-library tests on what
// @microsoft/fetch-event-source, event-source-polyfill and the Node
// eventsource package handed their callers.
//
// backends_test.go runs the legacy backends of examples/ (sse.php in php-fpm,
// Node http, Express, Flask) as real processes behind the examples' own
// Caddyfiles, read by Go's HTTP/2 client and the browser side by side.
//
// Without an engine (or node and `npm ci` in e2e/node) its subtests skip,
// except when CI=true, where that is a failure. $E2E_ENGINES (such as
// "chromium,firefox") picks engines; $E2E_CHROMIUM, $E2E_FIREFOX and
// $E2E_MINIBROWSER override the browsers' paths.
package e2e
