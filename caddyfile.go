package sseproxy

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/dustin/go-humanize"

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
	"heartbeat":           true,
	"retry":               true,
	"cors":                true,
	"auth_header":         true,
	"reconnect":           true,
	"reconnect_for":       true,
	"max_event_size":      true,
	"max_age":             true,
	"last_event_id_query": true,
	"share":               true,
	"share_linger":        true,
	"replay":              true,
	"replay_for":          true,
	"replay_max_bytes":    true,
	"client_buffer":       true,
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
//	    reconnect [<initial> [<max>]] | off
//	    reconnect_for <duration>
//	    max_event_size <size>
//	    max_age <duration>
//	    last_event_id_query <names...>
//	    share [<key>]
//	    share_linger <duration>
//	    replay <count>
//	    replay_for <duration>
//	    replay_max_bytes <size>
//	    client_buffer <size>
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
			break
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
		if _, err := proxy.NewCORS(*c); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.CORS = c

	case "auth_header":
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("sse_proxy: auth_header takes a field and a value, e.g. auth_header Authorization \"Bearer {cookie.session}\"; got %d argument(s)", len(args))
		}
		a := AuthHeader{Field: args[0], Value: args[1]}
		if _, err := proxy.NewShaper([]AuthHeader{a}, nil); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.AuthHeaders = append(h.AuthHeaders, a)

	case "reconnect":
		args := d.RemainingArgs()
		if h.Reconnect == nil {
			h.Reconnect = new(Reconnect)
		}
		switch {
		case len(args) == 1 && args[0] == "off":
			h.Reconnect.Disabled = true
		case len(args) > 2:
			return d.Errf("sse_proxy: reconnect takes off, or up to two durations: the first and the longest wait")
		default:
			for i, a := range args {
				dur, err := positiveDuration(d, "reconnect", a, "")
				if err != nil {
					return err
				}
				if i == 0 {
					h.Reconnect.InitialDelay = dur
				} else {
					h.Reconnect.MaxDelay = dur
				}
			}
			if len(args) == 2 && h.Reconnect.MaxDelay < h.Reconnect.InitialDelay {
				return d.Errf("sse_proxy: reconnect: the longest wait %q is shorter than the first %q", args[1], args[0])
			}
		}

	case "reconnect_for", "max_age":
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("sse_proxy: %s takes one argument: a duration", name)
		}
		dur, err := positiveDuration(d, name, v, "")
		if err != nil {
			return err
		}
		if name == "max_age" {
			h.MaxAge = dur
			break
		}
		if h.Reconnect == nil {
			h.Reconnect = new(Reconnect)
		}
		h.Reconnect.For = dur

	case "max_event_size":
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("sse_proxy: max_event_size takes one argument: a size such as 1MiB")
		}
		size, err := humanize.ParseBytes(v)
		if err != nil || size == 0 || size > 1<<30 {
			return d.Errf("sse_proxy: max_event_size: %q is not a size between 1B and 1GiB", v)
		}
		h.MaxEventSize = int(size)

	case "last_event_id_query":
		names := d.RemainingArgs()
		if len(names) == 0 {
			return d.Errf("sse_proxy: last_event_id_query needs at least one parameter name")
		}
		h.LastEventIDQuery = append(h.LastEventIDQuery, names...)

	case "share":
		if h.Share == nil {
			h.Share = new(Share)
		}
		args := d.RemainingArgs()
		if len(args) > 1 {
			return d.Errf("sse_proxy: share takes at most one argument, a key template (quote it if it has spaces)")
		}
		if len(args) == 1 {
			h.Share.Key = args[0]
		}

	case "share_linger", "replay_for", "replay", "replay_max_bytes", "client_buffer":
		if h.Share == nil {
			h.Share = new(Share)
		}
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("sse_proxy: %s takes one argument", name)
		}
		switch name {
		case "share_linger", "replay_for":
			dur, err := positiveDuration(d, name, v, "")
			if err != nil {
				return err
			}
			if name == "share_linger" {
				h.Share.Linger = dur
			} else {
				h.Share.ReplayFor = dur
			}
		case "replay":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("sse_proxy: replay: %q is not a positive number of events", v)
			}
			h.Share.Replay = n
		default:
			size, err := humanize.ParseBytes(v)
			if err != nil || size == 0 || size > 1<<30 {
				return d.Errf("sse_proxy: %s: %q is not a size between 1B and 1GiB", name, v)
			}
			if name == "client_buffer" {
				h.Share.ClientBuffer = int(size)
			} else {
				h.Share.ReplayMaxBytes = int(size)
			}
		}

	default:
		return d.Errf("sse_proxy: unrecognized subdirective %q", name)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("sse_proxy: %s takes no block", name)
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
