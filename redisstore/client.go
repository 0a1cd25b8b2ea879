package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// clients holds one Client per distinct configuration, shared by every
// handler that uses it and kept across config reloads while in use.
var clients = caddy.NewUsagePool()

// Client is a connection pool to one Redis server plus one pub/sub
// connection multiplexed over every stream this process follows. Get one
// with Open and give it back with Close; it is safe for concurrent use.
type Client struct {
	rdb    *redis.Client
	cfg    Config // expanded; holds the password: never log it, use cfg.String
	lease  time.Duration
	logger *zap.Logger
	errLog proxy.RateLog

	ctx    context.Context // ends when the last user closes the client
	cancel context.CancelFunc
	wg     sync.WaitGroup // the dispatcher and the catch-up goroutines

	follow followers
}

// Open returns the process's client for cfg, creating it on first use. cfg
// is expanded (placeholders, defaults) and validated first. No connection
// is made until a command needs one, so Open succeeds while Redis is down.
// Every Open needs a Close.
func Open(cfg Config, logger *zap.Logger) (*Client, error) {
	cfg.expand()
	return openExpanded(cfg, logger)
}

// openExpanded is Open for a cfg expanded already (placeholders are
// replaced once: a value that an environment variable brought in is
// taken as it is).
func openExpanded(cfg Config, logger *zap.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	v, _, err := clients.LoadOrNew(cfg.poolKey(), func() (caddy.Destructor, error) {
		return newClient(cfg, logger)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Client), nil
}

// newClient makes the go-redis client for cfg.
func newClient(cfg Config, logger *zap.Logger) (*Client, error) {
	network, addr, err := cfg.network()
	if err != nil {
		return nil, err
	}
	lease := time.Duration(cfg.Lease)
	// Commands time out well within a lease, so that a holder cut off from
	// Redis learns it before another instance can take over.
	timeout := min(lease/3, 3*time.Second)
	opt := &redis.Options{
		Network:               network,
		Addr:                  addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		Protocol:              2, // RESP2: Redis 6.2 and Valkey alike, pub/sub on its own connection
		DialTimeout:           timeout,
		DialerRetries:         1, // a dial that fails fails now: the caller falls back, and retries later
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		// No retries: a retried append whose first try reached Redis would
		// append twice. Callers retry at their own pace.
		MaxRetries:               -1,
		DisableIdentity:          true, // CLIENT SETINFO is Redis 7.2+
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(addr)
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	routeGoRedisLog()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		rdb:    redis.NewClient(opt),
		cfg:    cfg,
		lease:  lease,
		logger: logger.With(zap.String("redis", cfg.Address)),
		ctx:    ctx,
		cancel: cancel,
	}
	c.follow.init(c)
	return c, nil
}

// Config returns the client's configuration, expanded and with defaults.
// It holds the password: log it only through its String or
// MarshalLogObject.
func (c *Client) Config() Config { return c.cfg }

// Lease is how long a lease lasts without renewal.
func (c *Client) Lease() time.Duration { return c.lease }

// Close gives the client back; the last Close of a configuration stops its
// followers and closes its connections.
func (c *Client) Close() error {
	_, err := clients.Delete(c.cfg.poolKey())
	return err
}

// Destruct closes the connections; the usage pool calls it when the last
// user is gone. Use Close, not this.
func (c *Client) Destruct() error {
	c.cancel()
	c.follow.close()
	err := c.rdb.Close()
	c.wg.Wait()
	return err
}

// fail counts and logs (rate-limited) a failed command, and returns err
// with the command named. The error texts of go-redis never carry the
// password, and neither do ours.
func (c *Client) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	err = scrub(err, c.cfg.Password)      // logged too, not only returned
	if errors.Is(err, context.Canceled) { // the caller gave up: not the store's failure
		return fmt.Errorf("redis store: %s: %w", op, err)
	}
	metrics.errors.Inc()
	c.errLog.Log(c.logger, zap.WarnLevel, "redis store: command failed", zap.String("op", op), zap.Error(err))
	return fmt.Errorf("redis store: %s: %w", op, err)
}

// scrub replaces the password in err's text, should a server or dialer
// ever echo it.
func scrub(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "[REDACTED]"))
}
