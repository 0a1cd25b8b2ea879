package proxy

// utf8BOM is the byte-order mark that a browser's UTF-8 decoder strips
// once, from the very start of each response body it reads.
var utf8BOM = []byte("\xef\xbb\xbf")

// bodyStart settles the upstream's leading BOM while the start of its body
// is still undecided (!started; see leadingBOM), writing what turned out
// to be data. It returns what is left of p to relay and how many bytes of
// p it consumed; an error is that of the client's write, after which the
// stream is closed. Callers hold mu.
func (w *Writer) bodyStart(p []byte) (rest []byte, skipped int, err error) {
	p, held, skipped := w.leadingBOM(p)
	if held != nil {
		// A BOM prefix turned out to be data: it goes first.
		n, err := w.rw.Write(held)
		w.scan.Feed(held[:n])
		if err != nil {
			w.fail()
			return nil, 0, err
		}
	}
	return p, skipped, nil
}

// leadingBOM handles a UTF-8 BOM at the start of an upstream response's
// body, also when it arrives split across writes: up to two bytes that may
// begin a BOM are held back until the next write decides. It returns what
// is left of p to relay, the held bytes when they proved to be data, and
// how many bytes of p it consumed. Callers hold mu.
//
// The page must see what it would see without the proxy, where the browser
// strips one BOM from the start of each response. So a whole BOM is passed
// through when the client's body is still empty (the browser strips it
// there, and a second BOM behind it stays data, as it would), and dropped
// when the proxy has already sent bytes (a retry field, a heartbeat, an
// earlier response's events): there it would be data to the browser. Either
// way the scanner never sees it, so an id on the first line still counts.
func (w *Writer) leadingBOM(p []byte) (rest, held []byte, consumed int) {
	i := 0
	for w.bomSeen+i < len(utf8BOM) && i < len(p) && p[i] == utf8BOM[w.bomSeen+i] {
		i++
	}
	switch {
	case w.bomSeen+i == len(utf8BOM): // a whole BOM
		w.started, w.bomSeen = true, 0
		if !w.sent {
			// Sent on its own, ahead of anything held: once a heartbeat
			// follows it, it is still the first thing in the body.
			if _, err := w.rw.Write(utf8BOM); err != nil {
				w.fail()
			}
			w.dirty, w.sent = true, true
		}
		return p[i:], nil, i
	case i == len(p): // still a BOM prefix: hold it
		w.bomSeen += i
		return nil, nil, i
	default: // not a BOM after all
		w.started = true
		if w.bomSeen > 0 {
			held = utf8BOM[:w.bomSeen]
			w.bomSeen = 0
		}
		return p, held, 0
	}
}
