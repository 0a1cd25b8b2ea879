package redisstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Should a server or dialer ever echo the password in an error, the log
// line does not carry it either, not only the error returned.
func TestFailScrubsThePasswordFromTheLogToo(t *testing.T) {
	const secret = "hunter2-SECRET"
	cfg := Config{Address: "127.0.0.1:1", Password: secret, Lease: caddy.Duration(time.Second)}
	cfg.expand()
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := newClient(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Destruct() }()
	err = c.fail("auth", errors.New("ERR invalid password "+secret))
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error carries the password: %v", err)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, secret) {
				t.Errorf("log line %q field %s carries the password", e.Message, k)
			}
		}
	}
}
