// Command caddy is a Caddy binary with the standard modules plus sse_proxy:
// exactly what `xcaddy build --with github.com/sse-proxy/caddy-sse-proxy` produces.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/sse-proxy/caddy-sse-proxy"
)

func main() {
	caddycmd.Main()
}
