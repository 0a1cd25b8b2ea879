package redisstore

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Store{})
}

// Store is the redis store as a Caddy guest module
// (`http.handlers.sse_proxy.stores.redis`): shared streams, their replay
// and their upstream reader's lease live in Redis, so that a cluster of
// Caddy instances behaves like one proxy. Instances with the same
// configuration share one client.
type Store struct {
	Config

	client *Client
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sse_proxy.stores.redis",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision expands placeholders, fills in defaults, registers the
// metrics and opens (or shares) the client. No connection is made yet.
func (st *Store) Provision(ctx caddy.Context) error {
	st.logger = ctx.Logger()
	st.Config.expand()
	if err := st.Config.Validate(); err != nil {
		return err
	}
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := metrics.Register(reg); err != nil {
			return err
		}
	}
	c, err := openExpanded(st.Config, st.logger)
	if err != nil {
		return err
	}
	st.client = c
	st.logger.Debug("redis store", zap.Object("config", st.Config))
	return nil
}

// Validate checks the configuration (Provision did already; this keeps
// the module honest when Validate is called alone).
func (st *Store) Validate() error { return st.Config.Validate() }

// Cleanup gives the client back; the last user's Cleanup closes it.
func (st *Store) Cleanup() error {
	if st.client == nil {
		return nil
	}
	err := st.client.Close()
	st.client = nil
	return err
}

// Client returns the provisioned client.
func (st *Store) Client() *Client { return st.client }

// UnmarshalCaddyfile parses the `redis` block; see
// (*Config).UnmarshalCaddyfile.
func (st *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return st.Config.UnmarshalCaddyfile(d)
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*Store)(nil)
	_ caddy.Validator       = (*Store)(nil)
	_ caddy.CleanerUpper    = (*Store)(nil)
	_ caddyfile.Unmarshaler = (*Store)(nil)
)
