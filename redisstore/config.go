package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap/zapcore"
)

// Defaults of Config's optional fields.
const (
	DefaultKeyPrefix = "sse_proxy"
	DefaultLease     = 5 * time.Second
)

// On-store-failure policies.
const (
	// FailLocal keeps every client's stream when Redis cannot be reached:
	// the instance shares the stream within its own process until Redis
	// is back.
	FailLocal = "local"
	// FailError ends the streams of a key whose store cannot be reached.
	FailError = "error"
)

// Config is the redis store's configuration: the JSON twin of the
// Caddyfile block `redis <address> { ... }`.
type Config struct {
	// Address of the Redis server: host:port, or a unix socket written
	// `unix/path` or as an absolute path. Placeholders such as
	// `{env.REDIS_ADDR}` are expanded when the store starts.
	Address string `json:"address,omitempty"`

	// Username for Redis ACLs (Redis 6 and newer); empty: the default user.
	Username string `json:"username,omitempty"`

	// Password for AUTH. Write it as a placeholder, e.g.
	// `{env.REDIS_PASSWORD}`, so it stays out of the config; it is
	// expanded when the store starts and never logged.
	Password string `json:"password,omitempty"`

	// DB is the database number (SELECT); 0 by default.
	DB int `json:"db,omitempty"`

	// TLS connects with TLS, verifying the server's certificate against
	// the system roots.
	TLS bool `json:"tls,omitempty"`

	// KeyPrefix starts every key and channel the store uses; default
	// "sse_proxy". Instances that share streams use the same prefix.
	KeyPrefix string `json:"key_prefix,omitempty"`

	// Lease is how long a stream's upstream reader holds its lease without
	// renewing it (renewed every third of it); default 5s. A dead holder
	// is replaced after at most this long.
	Lease caddy.Duration `json:"lease,omitempty"`

	// OnStoreFailure is what happens to streams while Redis cannot be
	// reached: "local" (default) shares them within each instance and
	// rejoins the cluster later, no client stream is cut; "error" ends
	// them.
	OnStoreFailure string `json:"on_store_failure,omitempty"`
}

// expand replaces placeholders (environment variables and the like) in
// the string fields and fills in the defaults. It is called once, when the
// store is provisioned.
func (c *Config) expand() {
	repl := caddy.NewReplacer()
	c.Address = repl.ReplaceKnown(c.Address, "")
	c.Username = repl.ReplaceKnown(c.Username, "")
	c.Password = repl.ReplaceKnown(c.Password, "")
	c.KeyPrefix = repl.ReplaceKnown(c.KeyPrefix, "")
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.Lease == 0 {
		c.Lease = caddy.Duration(DefaultLease)
	}
	if c.OnStoreFailure == "" {
		c.OnStoreFailure = FailLocal
	}
}

// network splits Address into a dial network and address: "unix" and a
// path, or "tcp" and host:port.
func (c *Config) network() (network, addr string, err error) {
	a := c.Address
	switch {
	case a == "":
		return "", "", fmt.Errorf("redis: address: missing")
	case strings.Contains(a, "@"):
		// Not echoed: it may be a URL with a password in it.
		return "", "", fmt.Errorf("redis: address: must not contain '@' (a URL with credentials?): write host:port, and the credentials in username and password")
	case strings.HasPrefix(a, "unix/"):
		if len(a) == len("unix/") {
			return "", "", fmt.Errorf("redis: address %q: no socket path after unix/", a)
		}
		return "unix", a[len("unix/"):], nil
	case strings.HasPrefix(a, "/"):
		return "unix", a, nil
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Errorf("redis: address %q: want host:port, unix/path or /absolute/path", a)
	}
	if host == "" {
		return "", "", fmt.Errorf("redis: address %q: no host", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("redis: address %q: port %q is not a number from 1 to 65535", a, port)
	}
	return "tcp", a, nil
}

// Validate reports the first field that is wrong, naming it and its value
// (never the password's).
func (c *Config) Validate() error {
	if _, _, err := c.network(); err != nil {
		return err
	}
	if c.DB < 0 {
		return fmt.Errorf("redis: db %d: must be 0 or more", c.DB)
	}
	if c.Lease != 0 && time.Duration(c.Lease) < 100*time.Millisecond {
		return fmt.Errorf("redis: lease %s: must be at least 100ms", time.Duration(c.Lease))
	}
	if strings.ContainsAny(c.KeyPrefix, "{} \t\r\n") {
		return fmt.Errorf("redis: key_prefix %q: must not contain braces or white space", c.KeyPrefix)
	}
	switch c.OnStoreFailure {
	case "", FailLocal, FailError:
	default:
		return fmt.Errorf("redis: on_store_failure %q: want %q or %q", c.OnStoreFailure, FailLocal, FailError)
	}
	return nil
}

// poolKey identifies a client in the usage pool: a hash of the whole
// configuration, the password included only inside the hash.
func (c *Config) poolKey() string {
	b, _ := json.Marshal(c) // a struct of plain fields: cannot fail
	sum := sha256.Sum256(b)
	return "sse_proxy.redis." + hex.EncodeToString(sum[:])
}

// redacted is c with the secrets replaced, for logs and messages.
func (c Config) redacted() Config {
	if c.Password != "" {
		c.Password = "[REDACTED]"
	}
	if c.Username != "" {
		c.Username = "[REDACTED]"
	}
	return c
}

// String describes c without its username and password.
func (c Config) String() string {
	r := c.redacted()
	return fmt.Sprintf("redis %s (username %q, password %q, db %d, tls %t, key_prefix %q, lease %s, on_store_failure %q)",
		r.Address, r.Username, r.Password, r.DB, r.TLS, r.KeyPrefix, time.Duration(r.Lease), r.OnStoreFailure)
}

// MarshalLogObject writes c to a zap log line without its username and
// password.
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	r := c.redacted()
	enc.AddString("address", r.Address)
	if r.Username != "" {
		enc.AddString("username", r.Username)
	}
	if r.Password != "" {
		enc.AddString("password", r.Password)
	}
	enc.AddInt("db", r.DB)
	enc.AddBool("tls", r.TLS)
	enc.AddString("key_prefix", r.KeyPrefix)
	enc.AddDuration("lease", time.Duration(r.Lease))
	enc.AddString("on_store_failure", r.OnStoreFailure)
	return nil
}
