package proxy

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// RateLog writes at most one line a second at the level asked for; the
// lines in between go to debug level. Bad input that one client or one
// upstream repeats (every request, every event) is then logged once, not
// once per occurrence. The zero value is ready; it is safe for concurrent
// use.
type RateLog struct {
	last atomic.Int64 // unix nanoseconds of the last line at the level asked for
}

// Log writes msg to logger (nil: nowhere) at level, or at debug level when
// a line went out less than a second ago.
func (l *RateLog) Log(logger *zap.Logger, level zapcore.Level, msg string, fields ...zap.Field) {
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
