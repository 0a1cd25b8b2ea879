package sseproxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	sseproxy "github.com/sse-proxy/caddy-sse-proxy"
	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

// Bad input fails `caddy adapt` with a message that names the
// subdirective and the value.
func TestInvalidCaddyfileIsRejected(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"heartbeat 5s {\n\t\tbogus x\n\t}", "heartbeat takes no block"},
		{"share {\n\t\tbogus x\n\t}", "share takes no block"},
		{"replay 5 {\n\t\tbogus\n\t}", "replay takes no block"},
		{"heartbeat 0", `heartbeat: "0" must be a positive duration`},
		{"heartbeat -5s", `heartbeat: "-5s" must be a positive duration`},
		{"heartbeat soon", `heartbeat: "soon" is not a duration`},
		{"heartbeat", "heartbeat takes one argument"},
		{"retry 0s", `retry: "0s" must be a positive duration`},
		{"retry later", `retry: "later" is not a duration`},
		{"cors * {\n\t\tcredentials\n\t}", `origin "*" cannot be combined with credentials`},
		{"cors example.com", `origin "example.com": want scheme://host[:port]`},
		{"cors https://example.com/path", `origin "https://example.com/path"`},
		{"cors", "cors needs at least one origin"},
		{"cors https://a.com {\n\t\tmax_age never\n\t}", `cors max_age: "never" is not a duration`},
		{"cors https://a.com {\n\t\tcreds\n\t}", `cors: unrecognized subdirective "creds"`},
		{"cors https://a.com {\n\t\tallow_headers Bad:Field\n\t}", `allow_headers: "Bad:Field"`},
		{"auth_header Authorization", "auth_header takes a field and a value"},
		{"auth_header \"Bad Field\" x", `"Bad Field" is not a header field name`},
		{"heartbeet 5s", "unrecognized subdirective heartbeet"},
		{"reconnect 0", `reconnect: "0" must be a positive duration`},
		{"reconnect -1s", `reconnect: "-1s" must be a positive duration`},
		{"reconnect soon", `reconnect: "soon" is not a duration`},
		{"reconnect off 1s", `reconnect: "off" is not a duration`},
		{"reconnect 1s 2s 3s", "reconnect takes off, or up to two durations"},
		{"reconnect 2s 1s", `reconnect: the longest wait "1s" is shorter than the first "2s"`},
		{"reconnect_for 0", `reconnect_for: "0" must be a positive duration`},
		{"reconnect_for whenever", `reconnect_for: "whenever" is not a duration`},
		{"reconnect_for", "reconnect_for takes one argument"},
		{"reconnect_for 10s 20s", "reconnect_for takes one argument"},
		{"max_event_size 0", `max_event_size: "0" is not a size between 1B and 1GiB`},
		{"max_event_size lots", `max_event_size: "lots" is not a size between 1B and 1GiB`},
		{"max_event_size 2GiB", `max_event_size: "2GiB" is not a size between 1B and 1GiB`},
		{"max_event_size", "max_event_size takes one argument"},
		{"max_age -1s", `max_age: "-1s" must be a positive duration`},
		{"max_age 0", `max_age: "0" must be a positive duration`},
		{"max_age forever", `max_age: "forever" is not a duration`},
		{"max_age", "max_age takes one argument"},
		{"last_event_id_query", "last_event_id_query needs at least one parameter name"},
		{"share a b", "share takes at most one argument"},
		{"share_linger 0", `share_linger: "0" must be a positive duration`},
		{"share_linger -5s", `share_linger: "-5s" must be a positive duration`},
		{"share_linger awhile", `share_linger: "awhile" is not a duration`},
		{"share_linger", "share_linger takes one argument"},
		{"replay 0", `replay: "0" is not a positive number of events`},
		{"replay -1", `replay: "-1" is not a positive number of events`},
		{"replay many", `replay: "many" is not a positive number of events`},
		{"replay 1.5", `replay: "1.5" is not a positive number of events`},
		{"replay", "replay takes one argument"},
		{"replay 10 20", "replay takes one argument"},
		{"replay_for -1s", `replay_for: "-1s" must be a positive duration`},
		{"replay_for 0", `replay_for: "0" must be a positive duration`},
		{"replay_for ages", `replay_for: "ages" is not a duration`},
		{"replay_for", "replay_for takes one argument"},
		{"replay_max_bytes 0", `replay_max_bytes: "0" is not a size between 1B and 1GiB`},
		{"replay_max_bytes 2GiB", `replay_max_bytes: "2GiB" is not a size between 1B and 1GiB`},
		{"replay_max_bytes plenty", `replay_max_bytes: "plenty" is not a size between 1B and 1GiB`},
		{"replay_max_bytes", "replay_max_bytes takes one argument"},
		{"client_buffer 0", `client_buffer: "0" is not a size between 1B and 1GiB`},
		{"client_buffer huge", `client_buffer: "huge" is not a size between 1B and 1GiB`},
		{"client_buffer 2GiB", `client_buffer: "2GiB" is not a size between 1B and 1GiB`},
		{"client_buffer", "client_buffer takes one argument"},
		{"client_buffer 1MiB 2MiB", "client_buffer takes one argument"},
		{"cors https://a.com\ncors https://b.com", "cors may be given only once"},
		{"cors https://a.com {\n\tcredentials yes\n}", "wrong argument count"},
		{"cors https://a.com {\n\tmax_age 0\n}", `cors max_age: "0" must be a positive duration`},
		{"cors https://a.com {\n\tmax_age\n}", "cors max_age takes one argument: a duration"},
		{"cors https://a.com {\n\tmax_age 5s {\n\t\tbogus\n\t}\n}", "cors max_age takes no block"},
		{"cors https://a.com {\n\texpose_headers a:b\n}", `expose_headers: "a:b"`},
		{"auth_header A b c", "auth_header takes a field and a value, e.g. auth_header Authorization \"Bearer {cookie.session}\"; got 3 argument(s)"},
		{"reconnect_for 5s {\n\tbogus\n}", "reconnect_for takes no block"},
		{"retry", "retry takes one argument: a duration"},
		{"max_age 1h 2h", "max_age takes one argument: a duration"},
	} {
		cf := fmt.Sprintf(":8080 {\n\tsse_proxy 127.0.0.1:9 {\n\t\t%s\n\t}\n}\n", strings.ReplaceAll(tc.block, "\n", "\n\t"))
		_, _, err := testcaddy.AdaptErr(cf)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "at Caddyfile:") {
			t.Errorf("%q: error %v, want one containing %q and the line", tc.block, err, tc.want)
		}
	}
}

// The JSON config is checked as strictly, by Provision/Validate (what
// `caddy validate` runs).
func TestInvalidJSONIsRejected(t *testing.T) {
	for _, tc := range []struct{ handler, want string }{
		{`"retry": -1000000000`, "retry -1s is negative"},
		{`"cors": {"origins": ["*"], "credentials": true}`, `"*" cannot be combined with credentials`},
		{`"cors": {"origins": ["ftp//x"]}`, `origin "ftp//x"`},
		{`"auth_headers": [{"field": "Authorization"}]`, "auth_header Authorization: a value is required"},
		{`"share": {"linger": -1000000000}`, "share: negative"},
		{`"share": {"replay": -1}`, "share: negative"},
		{`"share": {"replay_for": "-1m"}`, "share: negative"},
		{`"share": {"replay_max_bytes": -1}`, "share: negative"},
		{`"share": {"client_buffer": -1}`, "share: negative"},
		{`"reconnect": {"initial_delay": "-1s"}`, "reconnect initial_delay -1s is negative"},
		{`"reconnect": {"max_delay": "-2s"}`, "reconnect max_delay -2s is negative"},
		{`"reconnect": {"for": "-3s"}`, "reconnect for -3s is negative"},
		{`"reconnect": {"initial_delay": "2s", "max_delay": "1s"}`, "reconnect: the longest wait 1s is shorter than the first 2s"},
		{`"max_age": "-1m"`, "max_age -1m0s is negative"},
		{`"max_event_size": -1`, "max_event_size -1 is negative"},
		{`"last_event_id_query": [""]`, "last_event_id_query: empty parameter name"},
		{`"cors": {"origins": ["https://a.com"], "max_age": "-1s"}`, "cors: max_age -1s is negative"},
		{`"cors": {"origins": ["https://a.com"], "allow_headers": ["X Bad"]}`, `allow_headers: "X Bad"`},
		{`"cors": {}`, "cors: at least one origin is required"},
		{`"auth_headers": [{"field": "Bad Field", "value": "x"}]`, `"Bad Field" is not a header field name`},
	} {
		cfg := fmt.Sprintf(`{"admin":{"disabled":true},"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"sse_proxy",%s}]}]}}}}}`, tc.handler)
		err := caddy.Validate(mustConfig(t, cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.handler, err, tc.want)
		}
	}
}

func mustConfig(t *testing.T, s string) *caddy.Config {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// The directive expands into sse_proxy followed by reverse_proxy, which
// gets every subdirective that is not sse_proxy's.
func TestDirectiveExpandsIntoReverseProxy(t *testing.T) {
	out := testcaddy.Adapt(t, `:8080 {
	sse_proxy /events* 127.0.0.1:3000 127.0.0.1:3001 {
		heartbeat 5s
		cors https://app.example.com {
			credentials
		}
		lb_policy first
		health_uri /health
		header_up X-Test 1
		auth_header Authorization "Bearer {cookie.session}"
		transport http {
			dial_timeout 2s
		}
	}
	respond "other"
}`)
	s := string(out)
	for _, want := range []string{
		`"handle":[{"auth_headers":[{"field":"Authorization","value":"Bearer {http.request.cookie.session}"}],"cors":{"credentials":true,"origins":["https://app.example.com"]},"handler":"sse_proxy","heartbeat":5000000000},{"handler":"reverse_proxy"`,
		`"upstreams":[{"dial":"127.0.0.1:3000"},{"dial":"127.0.0.1:3001"}]`,
		`"selection_policy":{"policy":"first"}`,
		`"uri":"/health"`,
		`"dial_timeout":2000000000`,
		`"match":[{"path":["/events*"]}]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted config lacks %s\n%s", want, s)
		}
	}
	// Ordered before respond (and encode): no global order option needed.
	if strings.Index(s, `"sse_proxy"`) > strings.Index(s, `"static_response"`) {
		t.Errorf("sse_proxy sorted after respond:\n%s", s)
	}
}

// The good forms of the resilience subdirectives adapt to the JSON that
// the README shows, and that JSON provisions.
func TestCaddyfileResilienceSubdirectivesAdaptToJSON(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"reconnect 100ms 2s\n\treconnect_for 10s", `"reconnect":{"for":10000000000,"initial_delay":100000000,"max_delay":2000000000}`},
		{"reconnect 100ms", `"reconnect":{"initial_delay":100000000}`},
		{"reconnect_for 1m", `"reconnect":{"for":60000000000}`},
		{"reconnect off", `"reconnect":{"disabled":true}`},
		{"max_event_size 64KiB", `"max_event_size":65536`},
		{"max_event_size 1MiB", `"max_event_size":1048576`},
		{"max_age 1h", `"max_age":3600000000000`},
		{"last_event_id_query lastEventId", `"last_event_id_query":["lastEventId"]`},
		{"last_event_id_query lastEventId last-event-id\n\tlast_event_id_query evs_last_id", `"last_event_id_query":["lastEventId","last-event-id","evs_last_id"]`},
	} {
		cf := fmt.Sprintf(":8080 {\n\tsse_proxy 127.0.0.1:9 {\n\t\t%s\n\t}\n}\n", strings.ReplaceAll(tc.block, "\n", "\n\t"))
		out := string(testcaddy.Adapt(t, cf))
		if !strings.Contains(out, tc.want) {
			t.Errorf("%q: adapted config lacks %s\n%s", tc.block, tc.want, out)
		}
		if err := caddy.Validate(mustConfig(t, out)); err != nil {
			t.Errorf("%q: the adapted config does not provision: %v", tc.block, err)
		}
	}
}

// The good forms of the share subdirectives adapt to the JSON that the
// README shows, and that JSON provisions. Any of them turns sharing on.
func TestCaddyfileShareSubdirectivesAdaptToJSON(t *testing.T) {
	for _, tc := range []struct{ block, want string }{
		{"share", `"share":{}`},
		{"share {http.request.uri.path}", `"share":{"key":"{http.request.uri.path}"}`},
		{"share {path}", `"share":{"key":"{http.request.uri.path}"}`},
		{`share "{http.request.host} {http.request.uri.path}"`, `"share":{"key":"{http.request.host} {http.request.uri.path}"}`},
		{"share_linger 10s", `"share":{"linger":10000000000}`},
		{"replay 50", `"share":{"replay":50}`},
		{"replay_for 1m", `"share":{"replay_for":60000000000}`},
		{"replay_max_bytes 1MiB", `"share":{"replay_max_bytes":1048576}`},
		{"client_buffer 64KiB", `"share":{"client_buffer":65536}`},
		{"share\n\tshare_linger 10s\n\treplay 50\n\treplay_for 1m\n\tclient_buffer 64KiB\n\treplay_max_bytes 1MiB",
			`"share":{"client_buffer":65536,"linger":10000000000,"replay":50,"replay_for":60000000000,"replay_max_bytes":1048576}`},
		{"replay 50\n\tshare {http.request.uri.path}", `"share":{"key":"{http.request.uri.path}","replay":50}`},
		{"share\n\theader_up Authorization \"Bearer {env.SERVICE_TOKEN}\"", `"share":{}`},
	} {
		cf := fmt.Sprintf(":8080 {\n\tsse_proxy 127.0.0.1:9 {\n\t\t%s\n\t}\n}\n", strings.ReplaceAll(tc.block, "\n", "\n\t"))
		out := string(testcaddy.Adapt(t, cf))
		if !strings.Contains(out, tc.want) {
			t.Errorf("%q: adapted config lacks %s\n%s", tc.block, tc.want, out)
		}
		if err := caddy.Validate(mustConfig(t, out)); err != nil {
			t.Errorf("%q: the adapted config does not provision: %v", tc.block, err)
		}
	}
	// Without any share subdirective there is no sharing.
	out := string(testcaddy.Adapt(t, ":8080 {\n\tsse_proxy 127.0.0.1:9\n}\n"))
	if strings.Contains(out, `"share"`) {
		t.Errorf("share set without a share subdirective:\n%s", out)
	}
}

// `caddy adapt` must fail where `caddy run` would: a first reconnect wait
// above the default longest wait (5s) with no longest wait given is
// rejected by Provision, so it must be rejected by the Caddyfile too.
// A first wait longer than the default longest wait raises the longest
// wait with it: what adapts also runs.
func TestCaddyfileReconnectInitialAboveDefaultMaxRuns(t *testing.T) {
	out, _, err := testcaddy.AdaptErr(":8080 {\n\tsse_proxy 127.0.0.1:9 {\n\t\treconnect 10s\n\t}\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(mustConfig(t, string(out))); err != nil {
		t.Errorf("reconnect 10s adapts but does not provision: %v", err)
	}
}

func TestSidecarCommandIsRegistered(t *testing.T) {
	cmd, ok := caddycmd.Commands()["sse-proxy"]
	if !ok {
		t.Fatal("caddy sse-proxy is not registered")
	}
	for _, f := range []string{"from", "to", "cors-origin", "credentials", "heartbeat", "retry", "auth-header", "internal-certs", "disable-redirects", "access-log", "debug"} {
		if !strings.Contains(cmd.Usage, "--"+f) {
			t.Errorf("usage lacks --%s", f)
		}
	}
}

func TestSidecarCaddyfileRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		o    sseproxy.SidecarOptions
		want string
	}{
		{sseproxy.SidecarOptions{}, "--to is required"},
		{sseproxy.SidecarOptions{To: []string{"a:1"}, AuthHeaders: []string{"Authorization"}}, `want "Field: value"`},
		{sseproxy.SidecarOptions{To: []string{"a:1"}, Credentials: true}, "--credentials needs at least one --cors-origin"},
		{sseproxy.SidecarOptions{To: []string{"a:1"}, AuthHeaders: []string{"X: `}\n}"}}, "backticks and line breaks"},
	} {
		if _, err := sseproxy.SidecarCaddyfile(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.o, err)
		}
	}
	cf, err := sseproxy.SidecarCaddyfile(sseproxy.SidecarOptions{To: []string{"a:1"}, Heartbeat: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := testcaddy.AdaptErr(cf); err == nil || !strings.Contains(err.Error(), `heartbeat: "0" must be a positive duration`) {
		t.Errorf("--heartbeat 0: %v", err)
	}
}

// The one-liner's config, run for real: CORS with credentials, the auth
// header from a cookie, heartbeats and retry.
func TestSidecarProxiesAStream(t *testing.T) {
	testcaddy.LeakCheck(t)
	up := newUpstream(t, script("data: a\n\n"))
	port := testcaddy.FreePort(t)
	cf, err := sseproxy.SidecarCaddyfile(sseproxy.SidecarOptions{
		From:        fmt.Sprintf("http://localhost:%d", port),
		To:          []string{up.addr()},
		CORSOrigins: []string{"https://app.example.com"},
		Credentials: true,
		Heartbeat:   "100ms",
		Retry:       "3s",
		AuthHeaders: []string{"Authorization: Bearer {cookie.session}"},
		AccessLog:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	testcaddy.Start(t, cf)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	s := testcaddy.Open(t, &http.Client{Transport: tr}, fmt.Sprintf("http://localhost:%d/events", port), http.Header{
		"Cookie": {"session=abc"}, "Origin": {"https://app.example.com"},
	})
	s.WaitFor(t, "retry: 3000\ndata: a\n\n:\n", wait)
	if got := up.requests()[0].Header.Get("Authorization"); got != "Bearer abc" {
		t.Errorf("upstream Authorization %q", got)
	}
	h := s.Resp.Header
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("CORS %v", h)
	}
	s.Close()
	tr.CloseIdleConnections()
}
