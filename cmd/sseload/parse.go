package main

import "bytes"

// Event is one dispatched Server-Sent Event. Its slices alias the parser's
// buffers and are valid only until the callback returns.
type Event struct {
	// Type is the event type; empty means the default "message".
	Type []byte
	// Data is the data buffer without its final LF.
	Data []byte
	// LastID is the last event ID as of this event.
	LastID []byte
}

// Parser is an incremental text/event-stream parser following the WHATWG
// HTML "event stream interpretation" rules: lines end in LF, CRLF or CR (also
// when a CRLF pair is split across two chunks), lines starting with a colon
// are comments, data lines are joined with LF, an event is dispatched on an
// empty line, and an unfinished event at the end of the stream is dropped.
//
// Feed may be called with chunks of any size. The zero value is ready to use.
type Parser struct {
	// OnEvent is called for every dispatched event.
	OnEvent func(Event)
	// OnComment is called for every comment line with the text after the colon.
	OnComment func(comment []byte)

	// Retry is the last valid reconnection time in milliseconds, or 0.
	Retry int64

	line    []byte // partial line carried over from the previous chunk
	afterCR bool   // previous chunk ended with CR: a leading LF completes that CRLF
	started bool   // the optional leading BOM has been dealt with
	data    []byte
	evType  []byte
	lastID  []byte
}

// bom is the UTF-8 byte order mark, which the spec strips once at the start.
const bom = "\xEF\xBB\xBF"

// Feed parses the next chunk of the stream.
func (p *Parser) Feed(b []byte) {
	if !p.started {
		// Collect up to three bytes to decide whether the stream starts with a BOM.
		if len(p.line)+len(b) < len(bom) && bytes.HasPrefix([]byte(bom), append(p.line, b...)) {
			p.line = append(p.line, b...)
			return
		}
		p.started = true
		if len(p.line) > 0 {
			b = append(p.line[:len(p.line):len(p.line)], b...)
			p.line = nil
		}
		b = bytes.TrimPrefix(b, []byte(bom))
	}
	for len(b) > 0 {
		if p.afterCR {
			p.afterCR = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := indexEOL(b)
		if i < 0 {
			p.line = append(p.line, b...)
			return
		}
		line := b[:i]
		if len(p.line) > 0 {
			p.line = append(p.line, line...)
			line = p.line
		}
		p.afterCR = b[i] == '\r'
		b = b[i+1:]
		p.processLine(line)
		p.line = p.line[:0]
	}
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			return i
		}
	}
	return -1
}

func (p *Parser) processLine(line []byte) {
	if len(line) == 0 {
		p.dispatch()
		return
	}
	if line[0] == ':' {
		if p.OnComment != nil {
			p.OnComment(line[1:])
		}
		return
	}
	name, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		name, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		p.evType = append(p.evType[:0], value...)
	case "data":
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.lastID = append(p.lastID[:0], value...)
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			p.Retry = ms
		}
	}
}

func (p *Parser) dispatch() {
	if len(p.data) == 0 {
		p.evType = p.evType[:0]
		return
	}
	if p.OnEvent != nil {
		p.OnEvent(Event{Type: p.evType, Data: p.data[:len(p.data)-1], LastID: p.lastID})
	}
	p.data = p.data[:0]
	p.evType = p.evType[:0]
}

// parseDigits parses a non-empty string of ASCII digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
