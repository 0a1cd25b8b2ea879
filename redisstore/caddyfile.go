package redisstore

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// subdirectives parse the options of the `redis` block, one each; the
// dispenser is on the option's name.
var subdirectives = map[string]func(c *Config, d *caddyfile.Dispenser) error{
	"username": func(c *Config, d *caddyfile.Dispenser) error { return oneArg(d, &c.Username) },
	"password": func(c *Config, d *caddyfile.Dispenser) error { return oneArg(d, &c.Password) },
	"key_prefix": func(c *Config, d *caddyfile.Dispenser) error {
		return oneArg(d, &c.KeyPrefix)
	},
	"on_store_failure": func(c *Config, d *caddyfile.Dispenser) error {
		if err := oneArg(d, &c.OnStoreFailure); err != nil {
			return err
		}
		if c.OnStoreFailure != FailLocal && c.OnStoreFailure != FailError {
			return d.Errf("on_store_failure %q: want %s or %s", c.OnStoreFailure, FailLocal, FailError)
		}
		return nil
	},
	"db": func(c *Config, d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return d.Errf("db %q: want a database number, 0 or more", s)
		}
		c.DB = n
		return nil
	},
	"tls": func(c *Config, d *caddyfile.Dispenser) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		c.TLS = true
		return nil
	},
	"lease": func(c *Config, d *caddyfile.Dispenser) error {
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil || dur <= 0 {
			return d.Errf("lease %q: want a positive duration such as 5s", s)
		}
		c.Lease = caddy.Duration(dur)
		return nil
	},
}

// oneArg reads the option's single argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// UnmarshalCaddyfile parses, with d on the token `redis`:
//
//	redis <host:port | unix/path | /path> {
//		username <name>
//		password <password>
//		db <n>
//		tls
//		key_prefix <prefix>
//		lease <duration>
//		on_store_failure local|error
//	}
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Err("redis: want an address: host:port, unix/path or /path")
	}
	c.Address = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		parse, ok := subdirectives[name]
		if !ok {
			return d.Errf("redis: unknown option %q", name)
		}
		if err := parse(c, d); err != nil {
			return err
		}
	}
	return nil
}
