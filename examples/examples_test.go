// Package examples_test keeps the example Caddyfiles honest: each must adapt
// without errors or warnings, be formatted the way `caddy fmt` formats it,
// use sse_proxy, and pass Caddy's own validation (every module provisioned).
package examples_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sse-proxy/caddy-sse-proxy"
)

// env holds, per example Caddyfile, the environment its placeholders need.
// Every Caddyfile under examples/ must be listed here.
var env = map[string]map[string]string{
	"demo/Caddyfile": {
		"DEMO_SITE":      "localhost:8443",
		"DEMO_BIND":      "127.0.0.1",
		"DEMO_UPSTREAM":  "127.0.0.1:3000",
		"DEMO_TOKEN":     "token",
		"DEMO_WWW":       "/tmp/www",
		"DEMO_STORAGE":   "/tmp/storage", // replaced by a temporary directory
		"DEMO_LOG_LEVEL": "WARN",
	},
	"cluster/Caddyfile": {
		"PORT":     "8081",
		"ADMIN":    "127.0.0.1:2021",
		"UPSTREAM": "127.0.0.1:3000",
		"REDIS":    "/tmp/sse-cluster/redis.sock",
	},
	"edge/Caddyfile": {},
	"sidecar/Caddyfile": {
		"LISTEN":      ":8080",
		"UPSTREAM":    "127.0.0.1:3000",
		"CORS_ORIGIN": "https://app.example.com https://admin.example.com",
		"HEARTBEAT":   "15s",
	},
	"backends/Caddyfile": {
		"SITE":     "localhost",
		"UPSTREAM": "127.0.0.1:3000",
		"WWW":      "/var/www/html",
	},
	"php_fastcgi/Caddyfile": {
		"SITE":     "localhost",
		"PHP_ROOT": "/var/www/html",
		"PHP_FPM":  "127.0.0.1:9000",
	},
}

func TestCaddyfiles(t *testing.T) {
	files, err := filepath.Glob("*/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := env[filepath.ToSlash(f)]; !ok {
			t.Errorf("%s: not tested; add it to env in examples_test.go", f)
		}
	}

	for name, vars := range env {
		t.Run(name, func(t *testing.T) {
			// Validation provisions the tls and pki apps, which write to Caddy's
			// storage and data directory: keep them away from the home directory.
			tmp := t.TempDir()
			t.Setenv("XDG_DATA_HOME", filepath.Join(tmp, "data"))
			t.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
			t.Setenv("HOME", tmp)
			for k, v := range vars {
				if k == "DEMO_STORAGE" {
					v = filepath.ToSlash(filepath.Join(tmp, "storage"))
				}
				t.Setenv(k, v)
			}

			input, err := os.ReadFile(filepath.FromSlash(name))
			if err != nil {
				t.Fatal(err)
			}
			if formatted := caddyfile.Format(input); !bytes.Equal(formatted, input) {
				t.Errorf("not formatted; run: caddy fmt --overwrite examples/%s", name)
			}

			cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(input, map[string]any{"filename": name})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("adapt warning: %s", w.String())
			}
			if !strings.Contains(string(cfgJSON), `"handler":"sse_proxy"`) {
				t.Errorf("the adapted config has no sse_proxy handler:\n%s", cfgJSON)
			}

			var cfg caddy.Config
			if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.StorageRaw == nil {
				// Caddy's default storage was fixed at init from the real
				// home directory; provisioning the pki app would write there.
				cfg.StorageRaw, err = json.Marshal(map[string]string{"module": "file_system", "root": filepath.Join(tmp, "storage")})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := caddy.Validate(&cfg); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}
