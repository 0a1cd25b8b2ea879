package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/sse-proxy/caddy-sse-proxy/proxy"
)

// goRedisLog sends go-redis's own log lines (a failed dial, a pub/sub
// reconnection...) to Caddy's log, named "redis", at most one warning a
// second and the rest at debug level, instead of its default: a line on
// stderr for each, many a second while Redis is down. go-redis has one
// logger per process: this applies to every user of go-redis in the Caddy
// binary, which is where their lines belong too.
type goRedisLog struct {
	logger *zap.Logger
	rate   proxy.RateLog
}

var setGoRedisLog sync.Once

// routeGoRedisLog installs goRedisLog, once.
func routeGoRedisLog() {
	setGoRedisLog.Do(func() {
		redis.SetLogger(&goRedisLog{logger: caddy.Log().Named("redis")})
	})
}

// Printf implements go-redis's logging interface.
func (l *goRedisLog) Printf(_ context.Context, format string, v ...any) {
	l.rate.Log(l.logger, zap.WarnLevel, fmt.Sprintf(format, v...))
}
