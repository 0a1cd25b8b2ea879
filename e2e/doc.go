// Package e2e holds end-to-end tests: Debian's Chromium, headless and driven
// through the DevTools protocol (chromedp), against a real Caddy with
// sse_proxy, over HTTPS with HTTP/2. Every test asserts on what a page
// observed: EventSource events, states and errors, resource timing, the DOM
// of the demo.
//
// backends_test.go runs the legacy backends of examples/ (sse.php in php-fpm,
// Node http, Express, Flask) as real processes behind the examples' own
// Caddyfiles, read by Go's HTTP/2 client and the browser side by side.
//
// The browser is /usr/bin/chromium (or $E2E_CHROMIUM). Without it the tests
// skip, except when CI=true, where a missing browser is a failure.
package e2e
