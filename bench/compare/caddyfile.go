package main

import (
	"fmt"
	"net"
	"strings"
)

// site is one Caddy site: a subject served over one protocol on its own port.
type site struct {
	subject string
	proto   string // h1: plain HTTP; h2: TLS (Caddy negotiates h2 by ALPN, and serves h3 on the same UDP port)
	port    int
}

// handlerBlock is the Caddyfile handler config of a proxied subject.
func handlerBlock(subject string, upstream string) string {
	switch subject {
	case "reverse_proxy":
		return "reverse_proxy " + upstream
	case "sse_proxy":
		return "sse_proxy " + upstream + " {\n\t\theartbeat 15s\n\t}"
	case "sse_proxy_share":
		// The default key (method, host, path, query, auth headers): every
		// client of a scenario asks for the same URL, so all share one stream.
		return "sse_proxy " + upstream + " {\n\t\theartbeat 15s\n\t\tshare\n\t}"
	default:
		panic("no Caddy config for subject " + subject)
	}
}

// globalOptions start every Caddyfile of the comparison: no admin
// endpoint, no automatic HTTPS, the given protocols ("h1 h2", or "h1 h2 h3":
// TLS sites then serve HTTP/3 on the UDP port of the same number), warnings
// only.
func globalOptions(protocols string) string {
	return `{
	admin off
	auto_https off
	persist_config off
	servers {
		protocols ` + protocols + `
	}
	log {
		level WARN
	}
}
`
}

// caddyfile renders one Caddyfile with every site. Sites bind to 127.0.0.1
// only; the TLS sites serve HTTP/2 over TCP and HTTP/3 over UDP.
func caddyfile(sites []site, upstream, certFile, keyFile string) string {
	var b strings.Builder
	b.WriteString(globalOptions("h1 h2 h3"))
	for _, s := range sites {
		scheme, tls := "http", ""
		if s.proto == "h2" {
			scheme, tls = "https", fmt.Sprintf("\ttls %s %s\n", certFile, keyFile)
		}
		fmt.Fprintf(&b, "\n# %s over %s\n%s://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\t%s\n}\n",
			s.subject, s.proto, scheme, s.port, tls, handlerBlock(s.subject, upstream))
	}
	return b.String()
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// nginxConfig renders an nginx config for SSE proxying as commonly
// recommended: one process (daemon off, master_process off), HTTP/1.1 on
// 127.0.0.1:port, proxy_buffering off, HTTP/1.1 upstream keep-alive with an
// empty Connection header, long read timeout. With h2port > 0 a second
// server serves the same over TLS with HTTP/2 (certFile, keyFile), in the
// syntax of the given nginx version ("1.22.1"): `listen ... ssl http2`
// before 1.25.1, `http2 on` since. Paths live under prefix.
func nginxConfig(prefix string, port int, upstream string, h2port int, certFile, keyFile, version string) string {
	location := `
		location / {
			proxy_pass http://sse;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
			proxy_cache off;
			proxy_read_timeout 1h;
		}`
	h2 := ""
	if h2port > 0 {
		listen := fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", h2port)
		if nginxHasHTTP2Directive(version) {
			listen = fmt.Sprintf("listen 127.0.0.1:%d ssl;\n\t\thttp2 on;", h2port)
		}
		h2 = fmt.Sprintf(`

	server {
		%s
		ssl_certificate %s;
		ssl_certificate_key %s;%s
	}`, listen, certFile, keyFile, location)
	}
	return fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;

events {
	worker_connections 20000;
}

http {
	access_log off;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;

	upstream sse {
		server %[3]s;
		keepalive 32;
	}

	server {
		listen 127.0.0.1:%[2]d;%[4]s
	}%[5]s
}
`, prefix, port, upstream, location, h2)
}

// nginxHasHTTP2Directive reports whether nginx of this version ("1.25.1")
// turns HTTP/2 on with the `http2` directive (1.25.1 and later) rather
// than the listen parameter, which later versions deprecate.
func nginxHasHTTP2Directive(version string) bool {
	var major, minor, patch int
	if n, _ := fmt.Sscanf(strings.TrimPrefix(version, "nginx/"), "%d.%d.%d", &major, &minor, &patch); n < 2 {
		return false
	}
	return major > 1 || (major == 1 && (minor > 25 || (minor == 25 && patch >= 1)))
}
