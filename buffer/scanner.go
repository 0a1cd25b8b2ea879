// Package buffer holds the event framing of a text/event-stream: a scanner
// that finds event boundaries in a byte stream cut into arbitrary chunks.
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
)

// Scanner tracks event boundaries in a text/event-stream. Per the HTML
// standard, lines end with CRLF, LF or CR, and an event ends with an empty
// line. The scanner keeps one byte of state, so it never holds data and its
// memory does not depend on what the stream contains.
//
// The zero value is a scanner at the start of a stream. It is not safe for
// concurrent use.
type Scanner struct {
	s state
}

// Feed advances the scanner over p. It returns the offset in p just past the
// last event boundary it contains, or -1 when p contains no boundary, and
// the number of events that p completes. A boundary is a position where no
// part of an event is pending: bytes written there (a comment line, say)
// cannot change any event. An event is a block of one or more lines ended
// by an empty line; empty lines between events complete none.
func (sc *Scanner) Feed(p []byte) (last, events int) {
	last = -1
	s := sc.s
	for i := 0; i < len(p); i++ {
		if s == inLine {
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
			if j < 0 {
				break
			}
			i += j
		}
		switch p[i] {
		case '\n':
			switch s {
			case lineStart:
				// The empty line that ends an event.
				s = atBoundary
				last = i + 1
				events++
			case atBoundary, atBoundaryCR:
				// An empty line between events, or the LF of a CRLF
				// that ended one.
				s = atBoundary
				last = i + 1
			case inLine:
				s = lineStart
			case lineStartCR:
				// The LF of the CRLF that ended a non-empty line.
				s = lineStart
			}
		case '\r':
			switch s {
			case inLine:
				s = lineStartCR
			case lineStart, lineStartCR:
				s = atBoundaryCR
				last = i + 1
				events++
			default:
				s = atBoundaryCR
				last = i + 1
			}
		default:
			s = inLine
		}
	}
	sc.s = s
	return last, events
}

// AtBoundary reports whether all bytes fed so far end at an event boundary.
func (sc *Scanner) AtBoundary() bool {
	return sc.s == atBoundary || sc.s == atBoundaryCR
}

// Reset puts the scanner at a boundary, as after bytes that end with an
// empty LF-terminated line (such as a heartbeat comment the proxy wrote).
func (sc *Scanner) Reset() {
	sc.s = atBoundary
}
