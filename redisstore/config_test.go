package redisstore

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/sse-proxy/caddy-sse-proxy/internal/redistest"
)

func TestCaddyfileParsesEveryOption(t *testing.T) {
	d := caddyfile.NewTestDispenser(`redis unix//run/redis.sock {
		username caddy
		password {env.REDIS_PASSWORD}
		db 3
		tls
		key_prefix myapp
		lease 2s
		on_store_failure error
	}`)
	d.Next()
	var c Config
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Config{Address: "unix//run/redis.sock", Username: "caddy", Password: "{env.REDIS_PASSWORD}", DB: 3, TLS: true,
		KeyPrefix: "myapp", Lease: caddy.Duration(2 * time.Second), OnStoreFailure: FailError}
	if c != want {
		t.Fatalf("parsed %+v\nwant   %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n, a, _ := c.network(); n != "unix" || a != "/run/redis.sock" {
		t.Fatalf("network %s %s", n, a)
	}
	// The JSON twin.
	b, _ := json.Marshal(c)
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("JSON round trip: %s -> %+v, %v", b, back, err)
	}
}

func TestCaddyfileErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`redis`, "want an address"},
		{`redis a:1 b`, "wrong argument count"},
		{"redis a:1 {\ndb x\n}", `db "x"`},
		{"redis a:1 {\ndb -1\n}", `db "-1"`},
		{"redis a:1 {\nlease soon\n}", `lease "soon"`},
		{"redis a:1 {\nlease -1s\n}", `lease "-1s"`},
		{"redis a:1 {\non_store_failure panic\n}", `on_store_failure "panic"`},
		{"redis a:1 {\ntls yes\n}", "wrong argument count"},
		{"redis a:1 {\npassword\n}", "wrong argument count"},
		{"redis a:1 {\ncolour blue\n}", `unknown option "colour"`},
	} {
		d := caddyfile.NewTestDispenser(tc.in)
		d.Next()
		var c Config
		err := c.UnmarshalCaddyfile(d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestValidateNamesTheOptionAndValueButNeverThePassword(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, "address: missing"},
		{Config{Address: "localhost"}, `address "localhost"`},
		{Config{Address: "localhost:0"}, `port "0"`},
		{Config{Address: "localhost:99999"}, `port "99999"`},
		{Config{Address: ":6379"}, "no host"},
		{Config{Address: "unix/"}, "no socket path"},
		{Config{Address: "h:1", DB: -2}, "db -2"},
		{Config{Address: "h:1", Lease: caddy.Duration(time.Millisecond)}, "lease 1ms"},
		{Config{Address: "h:1", KeyPrefix: "a{b}"}, `key_prefix "a{b}"`},
		{Config{Address: "h:1", OnStoreFailure: "retry"}, `on_store_failure "retry"`},
		{Config{Address: "h", Password: "s3cret-pw"}, `address "h"`},
		{Config{Address: "redis://:s3cret-pw@h:6379"}, "must not contain '@'"},
		{Config{Address: "s3cret-pw@h:6379"}, "must not contain '@'"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error with %q", tc.c.redacted(), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("error has the password: %v", err)
		}
	}
	for _, ok := range []string{"127.0.0.1:6379", "[::1]:6379", "redis.internal:6380", "unix/rel.sock", "/abs/redis.sock"} {
		if err := (&Config{Address: ok}).Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestModuleIsRegistered(t *testing.T) {
	info, err := caddy.GetModule("http.handlers.sse_proxy.stores.redis")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(*Store); !ok {
		t.Fatalf("module New() is %T", info.New())
	}
}

func TestStoreModuleProvisionsFromJSONAndCleansUp(t *testing.T) {
	srv := startRedis(t, redistest.WithArgs("--requirepass", "pw-from-env"))
	t.Setenv("SSE_PROXY_TEST_REDIS_PASSWORD", "pw-from-env")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	var st Store
	raw := `{"address": "` + srv.Addr() + `", "password": "{env.SSE_PROXY_TEST_REDIS_PASSWORD}", "lease": "2s"}`
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if err := st.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	c := st.Client()
	if c.Lease() != 2*time.Second || c.Config().KeyPrefix != DefaultKeyPrefix || c.Config().OnStoreFailure != FailLocal {
		t.Fatalf("config %v", c.Config())
	}
	if _, won, err := c.Stream("k", 10).Acquire(ctxT(t), "a"); err != nil || !won {
		t.Fatalf("Acquire through the module's client: %v, %v", won, err)
	}
	if err := st.Cleanup(); err != nil {
		t.Fatal(err)
	}
	var bad Store
	_ = json.Unmarshal([]byte(`{"address": "nowhere", "password": "hunter2"}`), &bad)
	err := bad.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `address "nowhere"`) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Provision with a bad address: %v", err)
	}
}
