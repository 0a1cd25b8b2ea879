package sseproxy

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/sse-proxy/caddy-sse-proxy/share"
)

func init() {
	caddy.RegisterModule(adminStreams{})
}

// adminStreams is the admin API's view of this instance's shared streams:
// GET /sse_proxy/streams lists them, as reverse_proxy's
// /reverse_proxy/upstreams lists its upstreams. Keys are shown hashed (the
// same hash names the stream's keys in a Redis store): a key covers the
// clients' credentials.
type adminStreams struct{}

// CaddyModule returns the Caddy module information.
func (adminStreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sse_proxy",
		New: func() caddy.Module { return new(adminStreams) },
	}
}

// Routes returns the admin routes.
func (a adminStreams) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/sse_proxy/streams",
		Handler: caddy.AdminHandlerFunc(a.handleStreams),
	}}
}

func (adminStreams) handleStreams(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(share.Streams())
}

// Interface guards
var _ caddy.AdminRouter = adminStreams{}
