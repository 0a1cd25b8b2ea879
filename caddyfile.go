package sseproxy

import (
	"encoding/json"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

func init() {
	httpcaddyfile.RegisterDirective("sse_proxy", parseCaddyfile)
	// After header, rewrite, basic_auth, forward_auth and request_header;
	// before encode, templates and the terminal handlers. Users need no
	// global `order` line.
	httpcaddyfile.RegisterDirectiveOrder("sse_proxy", httpcaddyfile.Before, "encode")
}

// ownSubdirectives are parsed by this module; every other subdirective is
// handed to reverse_proxy.
var ownSubdirectives = map[string]bool{
	"heartbeat":   true,
	"retry":       true,
	"cors":        true,
	"auth_header": true,
}

// parseCaddyfile sets up the directive:
//
//	sse_proxy [<matcher>] [<upstreams...>] {
//	    heartbeat <interval>|off
//	    retry <duration>
//	    cors <origins...> {
//	        credentials
//	        max_age <duration>
//	        allow_headers <fields...>
//	        expose_headers <fields...>
//	    }
//	    auth_header <field> <value>
//	    # ...and any reverse_proxy subdirective
//	}
//
// It expands into a route of two handlers: sse_proxy followed by Caddy's own
// reverse_proxy, which parses everything that is not sse_proxy's (the way
// php_fastcgi reuses reverse_proxy). With no upstreams and no reverse_proxy
// subdirectives the route holds sse_proxy alone, as middleware in front of
// whatever handles the request next (php_fastcgi, a Go app, ...).
func parseCaddyfile(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	if !h.Next() {
		return nil, h.ArgErr()
	}
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}

	h.Next() // ExtractMatcherSet rewound to before the directive name

	// A dispenser over this directive alone. Our own subdirectives are
	// parsed and deleted from it, so that what remains is a reverse_proxy
	// directive.
	d := h.NewFromNextSegment()
	d.Next() // the directive name
	proxied := d.CountRemainingArgs() > 0
	d.RemainingArgs()
	handler := new(Handler)
	for d.NextBlock(0) {
		if d.Nesting() != 1 {
			continue // inside a reverse_proxy subdirective's block
		}
		if !ownSubdirectives[d.Val()] {
			proxied = true
			continue
		}
		seg := d.NextSegment()
		if err := handler.unmarshalSubdirective(caddyfile.NewDispenser(seg)); err != nil {
			return nil, err
		}
		n := len(seg)
		if d.Val() == "}" && seg[len(seg)-1].Text != "}" {
			n += 2 // an empty block, "{}", which NextSegment leaves out
		}
		d.DeleteN(n)
	}

	handlers := []json.RawMessage{caddyconfig.JSONModuleObject(handler, "handler", "sse_proxy", nil)}
	if proxied {
		rp := new(reverseproxy.Handler)
		d.Reset() // UnmarshalCaddyfile consumes the directive name itself
		if err := rp.UnmarshalCaddyfile(d); err != nil {
			return nil, err
		}
		if err := rp.FinalizeUnmarshalCaddyfile(h); err != nil {
			return nil, err
		}
		handlers = append(handlers, caddyconfig.JSONModuleObject(rp, "handler", "reverse_proxy", nil))
	}
	route := caddyhttp.Route{HandlersRaw: handlers}
	if matcherSet != nil {
		route.MatcherSetsRaw = []caddy.ModuleMap{matcherSet}
	}
	return []httpcaddyfile.ConfigValue{{Class: "route", Value: route}}, nil
}

// UnmarshalCaddyfile parses a block of sse_proxy's own subdirectives:
//
//	sse_proxy {
//	    heartbeat <interval>|off
//	    retry <duration>
//	    cors <origins...> { ... }
//	    auth_header <field> <value>
//	}
//
// The directive itself is parsed by parseCaddyfile, which also accepts
// upstreams and reverse_proxy subdirectives.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if !ownSubdirectives[d.Val()] {
			return d.Errf("sse_proxy: unrecognized subdirective %q", d.Val())
		}
		if err := h.unmarshalSubdirective(d); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSubdirective parses one subdirective; d is at its name. It
// checks values as strictly as Provision does, so that `caddy adapt` fails
// where `caddy run` would.
func (h *Handler) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	if d.Val() == "" {
		d.Next()
	}
	name := d.Val()
	switch name {
	case "heartbeat":
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("sse_proxy: heartbeat takes one argument: an interval or off")
		}
		if v == "off" {
			h.Heartbeat = -1
			return nil
		}
		dur, err := positiveDuration(d, name, v, ` (use "heartbeat off" to disable heartbeats)`)
		if err != nil {
			return err
		}
		h.Heartbeat = dur

	case "retry":
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("sse_proxy: retry takes one argument: a duration")
		}
		dur, err := positiveDuration(d, name, v, "")
		if err != nil {
			return err
		}
		h.Retry = dur

	case "cors":
		if h.CORS != nil {
			return d.Errf("sse_proxy: cors may be given only once")
		}
		c := &CORS{Origins: d.RemainingArgs()}
		if len(c.Origins) == 0 {
			return d.Errf("sse_proxy: cors needs at least one origin")
		}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			sub := d.Val()
			switch sub {
			case "credentials":
				if d.NextArg() {
					return d.ArgErr()
				}
				c.Credentials = true
			case "max_age":
				var v string
				if !d.AllArgs(&v) {
					return d.Errf("sse_proxy: cors max_age takes one argument: a duration")
				}
				dur, err := positiveDuration(d, "cors max_age", v, "")
				if err != nil {
					return err
				}
				c.MaxAge = dur
			case "allow_headers":
				c.AllowHeaders = append(c.AllowHeaders, d.RemainingArgs()...)
			case "expose_headers":
				c.ExposeHeaders = append(c.ExposeHeaders, d.RemainingArgs()...)
			default:
				return d.Errf("sse_proxy: cors: unrecognized subdirective %q", sub)
			}
		}
		if _, err := proxy.NewCORS(proxy.CORSConfig{
			Origins: c.Origins, Credentials: c.Credentials, MaxAge: time.Duration(c.MaxAge),
			AllowHeaders: c.AllowHeaders, ExposeHeaders: c.ExposeHeaders,
		}); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.CORS = c

	case "auth_header":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("sse_proxy: auth_header takes a field and a value, e.g. auth_header Authorization \"Bearer {cookie.session}\"; got %d argument(s)", len(args))
		}
		a := AuthHeader{Field: args[0], Value: args[1]}
		if _, err := proxy.NewShaper([]proxy.AuthHeader{{Field: a.Field, Value: a.Value}}, nil); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.AuthHeaders = append(h.AuthHeaders, a)

	default:
		return d.Errf("sse_proxy: unrecognized subdirective %q", name)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// positiveDuration parses v as a Caddy duration that must be above zero.
func positiveDuration(d *caddyfile.Dispenser, name, v, hint string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("sse_proxy: %s: %q is not a duration%s", name, v, hint)
	}
	if dur <= 0 {
		return 0, d.Errf("sse_proxy: %s: %q must be a positive duration%s", name, v, hint)
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
