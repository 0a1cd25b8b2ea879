package redisstore

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// rateLog writes at most one line a second at the level asked for; the
// lines in between go to debug level, so that a Redis outage seen by every
// stream is logged once a second, not once per command. The zero value is
// ready; it is safe for concurrent use.
type rateLog struct {
	last atomic.Int64 // unix nanoseconds of the last line at the level asked for
}

// log writes msg to logger (nil: nowhere) at level, or at debug level when
// a line went out less than a second ago.
func (l *rateLog) log(logger *zap.Logger, level zapcore.Level, msg string, fields ...zap.Field) {
	if logger == nil {
		return
	}
	now := time.Now().UnixNano()
	prev := l.last.Load()
	if now-prev < int64(time.Second) || !l.last.CompareAndSwap(prev, now) {
		level = zapcore.DebugLevel
	}
	if ce := logger.Check(level, msg); ce != nil {
		ce.Write(fields...)
	}
}
