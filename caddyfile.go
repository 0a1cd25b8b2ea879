package sseproxy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/dustin/go-humanize"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
	"github.com/sse-proxy/caddy-sse-proxy/redisstore"
	"github.com/sse-proxy/caddy-sse-proxy/share"
)

func init() {
	httpcaddyfile.RegisterDirective("sse_proxy", parseCaddyfile)
	// After header, rewrite, basic_auth, forward_auth and request_header;
	// before encode, templates and the terminal handlers. Users need no
	// global `order` line.
	httpcaddyfile.RegisterDirectiveOrder("sse_proxy", httpcaddyfile.Before, "encode")
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
//	    store memory | redis <address> {
//	        username <name>
//	        password <password>
//	        db <n>
//	        tls
//	        key_prefix <prefix>
//	        lease <duration>
//	        on_store_failure local|error
//	    }
//	    # ...and any reverse_proxy subdirective
//	}
//
// Its own subdirectives are the table subdirectives below, each named and
// parsed there once; a test keeps the list above and the README's equal to
// the table.
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
		if _, ok := lookup(subdirectives, d.Val()); !ok {
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

// UnmarshalCaddyfile parses a block of sse_proxy's own subdirectives, the
// ones in the table subdirectives (listed in parseCaddyfile's doc):
//
//	sse_proxy {
//	    heartbeat 5s
//	    ...
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
		if err := h.unmarshalSubdirective(d); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalSubdirective parses one of the subdirectives in the table; d is
// at its name, or just before it.
func (h *Handler) unmarshalSubdirective(d *caddyfile.Dispenser) error {
	if d.Val() == "" {
		d.Next()
	}
	return parseOne(d, "", subdirectives, h)
}

// A subdirective is one line of a block that this module parses. T is
// what the block configures: Handler for sse_proxy's own block, CORS for
// the block of cors.
type subdirective[T any] struct {
	// syntax is the line as the docs show it; its first word is the name.
	syntax string
	// block, for a subdirective that takes a block, is the syntax of the
	// block's own subdirectives.
	block []string
	// parse reads the arguments (and the block, if any) into cfg; d is at
	// the name. name is the name as errors show it ("cors max_age").
	parse func(d *caddyfile.Dispenser, name string, cfg *T) error
}

// subdirectives are sse_proxy's own, the one list of them: parseCaddyfile
// hands every other subdirective to reverse_proxy, and its doc comment and
// the README list these lines (a test checks both).
var subdirectives = []subdirective[Handler]{
	{syntax: "heartbeat <interval>|off", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		v, err := oneArg(d, name, "an interval or off")
		if err != nil {
			return err
		}
		if v == "off" {
			h.Heartbeat = -1
			return nil
		}
		h.Heartbeat, err = positiveDuration(d, name, v, ` (use "heartbeat off" to disable heartbeats)`)
		return err
	}},
	{syntax: "retry <duration>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.Retry, err = durationArg(d, name)
		return err
	}},
	{syntax: "cors <origins...>", block: syntaxOf(corsSubdirectives), parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		if h.CORS != nil {
			return d.Errf("sse_proxy: cors may be given only once")
		}
		c := &CORS{Origins: d.RemainingArgs()}
		if len(c.Origins) == 0 {
			return d.Errf("sse_proxy: cors needs at least one origin")
		}
		if err := parseBlock(d, name, corsSubdirectives, c); err != nil {
			return err
		}
		if _, err := proxy.NewCORS(*c); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.CORS = c
		return nil
	}},
	{syntax: "auth_header <field> <value>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		args := d.RemainingArgs()
		if len(args) != 2 {
			return d.Errf("sse_proxy: auth_header takes a field and a value, e.g. auth_header Authorization \"Bearer {cookie.session}\"; got %d argument(s)", len(args))
		}
		a := AuthHeader{Field: args[0], Value: args[1]}
		if _, err := proxy.NewShaper([]AuthHeader{a}, nil); err != nil {
			return d.Errf("sse_proxy: %v", err)
		}
		h.AuthHeaders = append(h.AuthHeaders, a)
		return nil
	}},
	{syntax: "reconnect [<initial> [<max>]] | off", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		args, rc := d.RemainingArgs(), h.ensureReconnect()
		switch {
		case len(args) == 1 && args[0] == "off":
			rc.Disabled = true
			return nil
		case len(args) > 2:
			return d.Errf("sse_proxy: reconnect takes off, or up to two durations: the first and the longest wait")
		}
		waits := []*caddy.Duration{&rc.InitialDelay, &rc.MaxDelay}
		for i, a := range args {
			var err error
			if *waits[i], err = positiveDuration(d, name, a, ""); err != nil {
				return err
			}
		}
		if len(args) == 2 && rc.MaxDelay < rc.InitialDelay {
			return d.Errf("sse_proxy: reconnect: the longest wait %q is shorter than the first %q", args[1], args[0])
		}
		return nil
	}},
	{syntax: "reconnect_for <duration>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.ensureReconnect().For, err = durationArg(d, name)
		return err
	}},
	{syntax: "max_event_size <size>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.MaxEventSize, err = sizeArg(d, name)
		return err
	}},
	{syntax: "max_age <duration>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.MaxAge, err = durationArg(d, name)
		return err
	}},
	{syntax: "last_event_id_query <names...>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		names := d.RemainingArgs()
		if len(names) == 0 {
			return d.Errf("sse_proxy: last_event_id_query needs at least one parameter name")
		}
		h.LastEventIDQuery = append(h.LastEventIDQuery, names...)
		return nil
	}},
	{syntax: "share [<key>]", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		s := h.ensureShare()
		switch args := d.RemainingArgs(); len(args) {
		case 0:
		case 1:
			s.Key = args[0]
		default:
			return d.Errf("sse_proxy: share takes at most one argument, a key template (quote it if it has spaces)")
		}
		return nil
	}},
	{syntax: "share_linger <duration>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.ensureShare().Linger, err = durationArg(d, name)
		return err
	}},
	{syntax: "replay <count>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		v, err := oneArg(d, name, "a number of events")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return d.Errf("sse_proxy: replay: %q is not a positive number of events", v)
		}
		h.ensureShare().Replay = n
		return nil
	}},
	{syntax: "replay_for <duration>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.ensureShare().ReplayFor, err = durationArg(d, name)
		return err
	}},
	{syntax: "replay_max_bytes <size>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.ensureShare().ReplayMaxBytes, err = sizeArg(d, name)
		return err
	}},
	{syntax: "client_buffer <size>", parse: func(d *caddyfile.Dispenser, name string, h *Handler) (err error) {
		h.ensureShare().ClientBuffer, err = sizeArg(d, name)
		return err
	}},
	{syntax: "store memory | redis <address>", block: redisBlock, parse: func(d *caddyfile.Dispenser, name string, h *Handler) error {
		s := h.ensureShare()
		if s.StoreRaw != nil {
			return d.Errf("sse_proxy: store may be given only once")
		}
		switch kind, _ := oneWord(d); kind {
		case "memory":
			s.StoreRaw = caddyconfig.JSONModuleObject(share.MemoryStore{}, "module", "memory", nil)
		case "redis":
			st := new(redisstore.Store)
			if err := st.UnmarshalCaddyfile(d); err != nil {
				return fmt.Errorf("sse_proxy: store %w", err)
			}
			s.StoreRaw = caddyconfig.JSONModuleObject(st, "module", "redis", nil)
		default:
			return d.Errf("sse_proxy: store %q: want memory, or redis and an address", kind)
		}
		return nil
	}},
}

// redisBlock is the syntax of store redis's block, for the docs; the
// redisstore package parses it.
var redisBlock = []string{
	"username <name>",
	"password <password>",
	"db <n>",
	"tls",
	"key_prefix <prefix>",
	"lease <duration>",
	"on_store_failure local|error",
}

// oneWord moves d to the next argument on the line and returns it, "" if
// there is none.
func oneWord(d *caddyfile.Dispenser) (string, bool) {
	if !d.NextArg() {
		return "", false
	}
	return d.Val(), true
}

// corsSubdirectives are the subdirectives of cors's block.
var corsSubdirectives = []subdirective[CORS]{
	{syntax: "credentials", parse: func(d *caddyfile.Dispenser, name string, c *CORS) error {
		c.Credentials = true
		return nil
	}},
	{syntax: "max_age <duration>", parse: func(d *caddyfile.Dispenser, name string, c *CORS) (err error) {
		c.MaxAge, err = durationArg(d, name)
		return err
	}},
	{syntax: "allow_headers <fields...>", parse: func(d *caddyfile.Dispenser, name string, c *CORS) error {
		c.AllowHeaders = append(c.AllowHeaders, d.RemainingArgs()...)
		return nil
	}},
	{syntax: "expose_headers <fields...>", parse: func(d *caddyfile.Dispenser, name string, c *CORS) error {
		c.ExposeHeaders = append(c.ExposeHeaders, d.RemainingArgs()...)
		return nil
	}},
}

// parseOne parses the subdirective d is at, one of table, into cfg, and
// checks that nothing is left on its line and that it has no block unless
// it took one. block names the block it is in ("cors"), or is empty for
// sse_proxy's own.
func parseOne[T any](d *caddyfile.Dispenser, block string, table []subdirective[T], cfg *T) error {
	s, ok := lookup(table, d.Val())
	if !ok && block != "" {
		return d.Errf("sse_proxy: %s: unrecognized subdirective %q", block, d.Val())
	}
	if !ok {
		return d.Errf("sse_proxy: unrecognized subdirective %q", d.Val())
	}
	name := d.Val()
	if block != "" {
		name = block + " " + name
	}
	if err := s.parse(d, name, cfg); err != nil {
		return err
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("sse_proxy: %s takes no block", name)
	}
	return nil
}

// parseBlock parses the block of the subdirective d is at, if it has one,
// into cfg; table lists the block's subdirectives and name is the
// subdirective's, for errors.
func parseBlock[T any](d *caddyfile.Dispenser, name string, table []subdirective[T], cfg *T) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := parseOne(d, name, table, cfg); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds the subdirective called name in table.
func lookup[T any](table []subdirective[T], name string) (subdirective[T], bool) {
	for _, s := range table {
		if s.name() == name {
			return s, true
		}
	}
	return subdirective[T]{}, false
}

// name is the subdirective's name, the first word of its syntax.
func (s subdirective[T]) name() string {
	name, _, _ := strings.Cut(s.syntax, " ")
	return name
}

// syntaxOf lists the syntax of each subdirective in table.
func syntaxOf[T any](table []subdirective[T]) []string {
	lines := make([]string, len(table))
	for i, s := range table {
		lines[i] = s.syntax
	}
	return lines
}

// ensureReconnect is h.Reconnect, set to an empty policy if it was nil.
func (h *Handler) ensureReconnect() *Reconnect {
	if h.Reconnect == nil {
		h.Reconnect = new(Reconnect)
	}
	return h.Reconnect
}

// ensureShare is h.Share, set to the defaults if it was nil: any share
// subdirective turns sharing on.
func (h *Handler) ensureShare() *Share {
	if h.Share == nil {
		h.Share = new(Share)
	}
	return h.Share
}

// oneArg returns the one argument of the subdirective d is at; what says
// what it should be, for the error.
func oneArg(d *caddyfile.Dispenser, name, what string) (string, error) {
	var v string
	if !d.AllArgs(&v) {
		return "", d.Errf("sse_proxy: %s takes one argument: %s", name, what)
	}
	return v, nil
}

// durationArg parses the one argument of the subdirective d is at as a
// positive duration.
func durationArg(d *caddyfile.Dispenser, name string) (caddy.Duration, error) {
	v, err := oneArg(d, name, "a duration")
	if err != nil {
		return 0, err
	}
	return positiveDuration(d, name, v, "")
}

// sizeArg parses the one argument of the subdirective d is at as a size
// between 1B and 1GiB.
func sizeArg(d *caddyfile.Dispenser, name string) (int, error) {
	v, err := oneArg(d, name, "a size such as 1MiB")
	if err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(v)
	if err != nil || size == 0 || size > 1<<30 {
		return 0, d.Errf("sse_proxy: %s: %q is not a size between 1B and 1GiB", name, v)
	}
	return int(size), nil
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
