// Package buffer holds the event framing of a text/event-stream: a scanner
// that finds event boundaries and the last event id in a byte stream cut
// into arbitrary chunks.
package buffer

import "bytes"

// state is where the scanner stands after the bytes it has seen.
type state uint8

const (
	// atBoundary: at the start of the stream or right after the empty line
	// that ends an event. Nothing of an event is pending.
	atBoundary state = iota
	// atBoundaryCR: as atBoundary, and the last byte was CR, so an LF that
	// follows belongs to the same line terminator (CRLF).
	atBoundaryCR
	// inLine: inside a non-empty line.
	inLine
	// lineStart: at the start of a line that follows a non-empty line; one
	// more line terminator here ends the event.
	lineStart
	// lineStartCR: as lineStart, and the last byte was CR.
	lineStartCR
	// fieldI and fieldID: the line so far is "i" or "id".
	fieldI
	fieldID
	// idValueStart: the line so far is "id:"; a space here is skipped.
	idValueStart
	// idValue: inside the value of an id field.
	idValue
	// fieldRetry: the line so far is a prefix of "retry" (Scanner.name
	// bytes of it).
	fieldRetry
	// retryValueStart: the line so far is "retry:"; a space here is
	// skipped.
	retryValueStart
	// retryDigits: the line so far is "retry:" and one space; a digit
	// must follow.
	retryDigits
	// retryValue: inside the value of a retry field, one or more digits
	// so far and nothing else.
	retryValue
)

// MaxIDLen bounds the id values the scanner keeps. A longer id is not
// tracked (LastID keeps the previous one); browsers only send short ASCII
// ids across origins without a preflight anyway.
const MaxIDLen = 1024

// Scanner tracks event boundaries and event ids in a text/event-stream. Per
// the HTML standard, lines end with CRLF, LF or CR, an event ends with an
// empty line, and the "id" field sets the id that an empty line commits as
// the stream's last event id. The scanner never holds event data: its
// memory is a few bytes of state plus the id, at most MaxIDLen.
//
// The zero value is a scanner at the start of a stream. It is not safe for
// concurrent use.
type Scanner struct {
	s         state
	val       []byte // the id value being read
	valLong   bool   // val exceeded MaxIDLen
	valBad    bool   // val holds a byte no header value may hold
	pending   []byte // the id an empty line would commit
	committed []byte // the last event id
	hasID     bool   // some id was committed
	pendingOK bool   // pending holds an id (committed or newer)
	masked    []byte // the bytes of the last Feed, id bytes masked (see Masked)
	maskedOK  bool   // masked is for the last Feed
	name      uint8  // fieldRetry: how many bytes of "retry" the line holds
	digits    uint64 // retryValue: the value so far, saturated
	retry     uint64 // the last retry field's value, in milliseconds
	hasRetry  bool   // some retry field was seen
}

// retryName is the field that sets the reconnection time.
const retryName = "retry"

// maxRetry saturates retry values: about 292 years in nanoseconds, so that
// Retry never overflows a time.Duration.
const maxRetry = uint64(1<<63-1) / 1e6

// atLineStart reports whether s is at the start of a line: at a boundary,
// or in the lineStart states.
func (s state) atLineStart() bool {
	return s == atBoundary || s == atBoundaryCR || s == lineStart || s == lineStartCR
}

// Feed advances the scanner over p. It returns the offset in p just past the
// last event boundary it contains, or -1 when p contains no boundary, and
// the number of events that p completes. A boundary is a position where no
// part of an event is pending: bytes written there (a comment line, say)
// cannot change any event. An event is a block of one or more lines ended
// by an empty line; empty lines between events complete none.
func (sc *Scanner) Feed(p []byte) (last, events int) {
	return sc.feed(p, false)
}

// NextEvent advances the scanner over p up to the end of the first event
// that p completes and returns the offset just past it, or -1 when p
// completes no event (then all of p was consumed). After an event, LastID
// is the stream's last event id as of that event.
func (sc *Scanner) NextEvent(p []byte) int {
	last, events := sc.feed(p, true)
	if events == 0 {
		return -1
	}
	return last
}

func (sc *Scanner) feed(p []byte, stopAtEvent bool) (last, events int) {
	last = -1
	if sc.maskedOK {
		sc.maskedOK = false
		if cap(sc.masked) > 64<<10 {
			sc.masked = nil // a big chunk passed: do not keep its memory
		}
	}
	s := sc.s
	for i := 0; i < len(p); i++ {
		if s == inLine || s == idValue {
			// Most bytes are inside a line: skip to the next terminator.
			// Two IndexByte calls (vectorised) beat one IndexAny, which
			// walks a two-byte set one byte at a time.
			rest := p[i:]
			j := bytes.IndexByte(rest, '\n')
			if j >= 0 {
				rest = rest[:j]
			}
			if k := bytes.IndexByte(rest, '\r'); k >= 0 {
				j = k
			}
			if s == idValue {
				end := len(p)
				if j >= 0 {
					end = i + j
				}
				sc.appendVal(p, i, end)
			}
			if j < 0 {
				break
			}
			i += j
		}
		c := p[i]
		if c != '\n' && c != '\r' {
			switch {
			case s.atLineStart():
				switch c {
				case 'i':
					s = fieldI
				case 'r':
					s, sc.name = fieldRetry, 1
				default:
					s = inLine
				}
			case s == fieldI && c == 'd':
				s = fieldID
			case s == fieldID && c == ':':
				s = idValueStart
			case s == fieldRetry && int(sc.name) < len(retryName) && c == retryName[sc.name]:
				sc.name++
			case s == fieldRetry && int(sc.name) == len(retryName) && c == ':':
				s, sc.digits = retryValueStart, 0
			case (s == retryValueStart || s == retryDigits || s == retryValue) && '0' <= c && c <= '9':
				s = retryValue
				sc.digits = min(sc.digits*10+uint64(c-'0'), maxRetry)
			case s == retryValueStart && c == ' ':
				s = retryDigits
			case s == idValueStart:
				s = idValue
				if c != ' ' {
					sc.appendVal(p, i, i+1)
				}
			default:
				s = inLine
			}
			continue
		}
		// A line terminator.
		switch s {
		case fieldID, idValueStart, idValue:
			sc.setPending()
		case retryValue:
			// Only a value of ASCII digits counts; an empty or other
			// value is ignored, as the standard says.
			sc.retry, sc.hasRetry = sc.digits, true
		}
		switch s {
		case lineStart, lineStartCR:
			if s == lineStartCR && c == '\n' {
				s = lineStart // the LF of the CRLF that ended a line
				break
			}
			// The empty line that ends an event.
			if c == '\n' {
				s = atBoundary
			} else {
				s = atBoundaryCR
			}
			last = i + 1
			events++
			sc.commit()
			if stopAtEvent {
				sc.s = s
				return last, events
			}
		case atBoundary, atBoundaryCR:
			// An empty line between events, or the LF of a CRLF that
			// ended one.
			if c == '\n' {
				s = atBoundary
			} else {
				s = atBoundaryCR
			}
			last = i + 1
		default: // the end of a non-empty line
			if c == '\n' {
				s = lineStart
			} else {
				s = lineStartCR
			}
		}
	}
	sc.s = s
	return last, events
}

// appendVal adds p[from:to], a piece of an id value, to the value being
// read, and masks the bytes of it that no header value may hold.
func (sc *Scanner) appendVal(p []byte, from, to int) {
	for k := from; k < to; k++ {
		if HeaderUnsafe(p[k]) {
			sc.valBad = true
			if p[k] != 0 {
				sc.mask(p, k)
			}
		}
	}
	if sc.valLong {
		return
	}
	if len(sc.val)+to-from > MaxIDLen {
		sc.valLong = true
		return
	}
	sc.val = append(sc.val, p[from:to]...)
}

// mask replaces p[k] with NUL in the copy of p that Masked returns.
func (sc *Scanner) mask(p []byte, k int) {
	if !sc.maskedOK {
		sc.masked = append(sc.masked[:0], p...)
		sc.maskedOK = true
	}
	sc.masked[k] = 0
}

// HeaderUnsafe reports whether b may not appear in an HTTP header value: a
// control byte other than horizontal tab, the rule of
// golang.org/x/net/http/httpguts.ValidHeaderFieldValue that Go's HTTP
// client and servers enforce (it is byte-wise, and the scanner needs it
// byte by byte across chunks). CR and LF end a line and never reach it.
func HeaderUnsafe(b byte) bool {
	return b < ' ' && b != '\t' || b == 0x7f
}

// Masked returns the bytes of the last Feed with every byte of an id value
// that no header value may hold (a control character) replaced by NUL, or
// nil when there was none. Relay these instead of what was fed: per the HTML
// standard an id field holding NUL is ignored, so a browser keeps the last
// id it could send back, where it would otherwise adopt an id that its
// reconnect carries in a Last-Event-ID header, which Go's servers refuse
// with a 400 and EventSource then gives up for good. LastID ignores such
// ids the same way. The slice is valid until the next Feed.
func (sc *Scanner) Masked() []byte {
	if !sc.maskedOK {
		return nil
	}
	return sc.masked
}

// setPending ends an id line: its value becomes the pending id, unless it
// holds NUL (the standard ignores such a field), holds another byte that
// cannot go back upstream in a Last-Event-ID header (Masked hides it from
// the client too), or was too long to keep.
func (sc *Scanner) setPending() {
	if !sc.valLong && !sc.valBad {
		sc.pending = append(sc.pending[:0], sc.val...)
		sc.pendingOK = true
	}
	sc.val, sc.valLong, sc.valBad = sc.val[:0], false, false
}

// commit is the dispatch step: the pending id becomes the last event id.
func (sc *Scanner) commit() {
	if sc.pendingOK {
		sc.committed = append(sc.committed[:0], sc.pending...)
		sc.hasID = true
	}
}

// AtBoundary reports whether all bytes fed so far end at an event boundary.
func (sc *Scanner) AtBoundary() bool {
	return sc.s == atBoundary || sc.s == atBoundaryCR
}

// LastID returns the last event id committed so far, as a browser's
// EventSource would hold it, and whether any id was seen. The slice is
// valid until the next call of Feed.
func (sc *Scanner) LastID() ([]byte, bool) {
	return sc.committed, sc.hasID
}

// Retry returns the value of the last valid retry field seen so far, in
// milliseconds, and whether there was one. It is the reconnection time a
// browser reading the same bytes would hold; a retry field takes effect
// when its line ends, even in an event that is never completed.
func (sc *Scanner) Retry() (ms uint64, ok bool) {
	return sc.retry, sc.hasRetry
}

// Reset puts the scanner at a boundary, as after bytes that end with an
// empty LF-terminated line (such as a heartbeat comment the proxy wrote).
// The ids and the reconnection time are kept.
func (sc *Scanner) Reset() {
	sc.s = atBoundary
}

// Restart prepares the scanner for a new upstream response that continues
// the same client stream: whatever event was pending is dropped, ids of
// completed events are kept, and so is the reconnection time.
func (sc *Scanner) Restart() {
	sc.s = atBoundary
	sc.val, sc.valLong, sc.valBad = sc.val[:0], false, false
	sc.pending = append(sc.pending[:0], sc.committed...)
	sc.pendingOK = sc.hasID
}
