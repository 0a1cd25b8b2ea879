package main

import (
	"fmt"
	"net"
	"strings"
)

// site is one Caddy site: a subject served over one protocol on its own port.
type site struct {
	subject string
	proto   string // h1: plain HTTP; h2: TLS (Caddy negotiates h2 by ALPN)
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
// endpoint, no automatic HTTPS, HTTP/1.1 and HTTP/2, warnings only.
const globalOptions = `{
	admin off
	auto_https off
	persist_config off
	servers {
		protocols h1 h2
	}
	log {
		level WARN
	}
}
`

// caddyfile renders one Caddyfile with every site. Sites bind to 127.0.0.1 only.
func caddyfile(sites []site, upstream, certFile, keyFile string) string {
	var b strings.Builder
	b.WriteString(globalOptions)
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
// empty Connection header, long read timeout. Paths live under prefix.
func nginxConfig(prefix string, port int, upstream string) string {
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
		listen 127.0.0.1:%[2]d;
		location / {
			proxy_pass http://sse;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_buffering off;
			proxy_cache off;
			proxy_read_timeout 1h;
		}
	}
}
`, prefix, port, upstream)
}
