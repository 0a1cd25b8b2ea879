package buffer

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// boundaryOracle answers, straight from the HTML standard's definition and
// independently of the scanner's state machine, whether the prefix s ends
// at an event boundary: it is empty, or its last line terminator ends an
// empty line. A CR at the very end counts as a terminator (whatever follows,
// the line has ended). It also counts the events s completes.
func boundaryOracle(s string) (atBoundary bool, events int) {
	type line struct{ empty bool }
	var lines []line
	cur := 0 // length of the current line
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			lines = append(lines, line{cur == 0})
			cur = 0
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
		case '\n':
			lines = append(lines, line{cur == 0})
			cur = 0
		default:
			cur++
		}
	}
	pending := false
	for _, l := range lines {
		if l.empty {
			if pending {
				events++
			}
			pending = false
		} else {
			pending = true
		}
	}
	if s == "" {
		return true, 0
	}
	last := s[len(s)-1]
	return (last == '\n' || last == '\r') && lines[len(lines)-1].empty, events
}

// all returns every string of length n over alphabet.
func all(alphabet string, n int) []string {
	out := []string{""}
	for i := 0; i < n; i++ {
		var next []string
		for _, p := range out {
			for _, c := range alphabet {
				next = append(next, p+string(c))
			}
		}
		out = next
	}
	return out
}

func TestAtBoundaryMatchesSpecForEveryPrefix(t *testing.T) {
	for n := 0; n <= 8; n++ {
		for _, s := range all("a\r\n", n) {
			var sc Scanner
			total := 0
			for i := 0; i < len(s); i++ {
				_, ev := sc.Feed([]byte{s[i]})
				total += ev
				want, wantEvents := boundaryOracle(s[:i+1])
				if got := sc.AtBoundary(); got != want {
					t.Fatalf("%q: after %q AtBoundary = %v, want %v", s, s[:i+1], got, want)
				}
				if total != wantEvents {
					t.Fatalf("%q: after %q events = %d, want %d", s, s[:i+1], total, wantEvents)
				}
			}
		}
	}
}

// TestFeedReportsLastBoundaryForEverySplit cuts streams into two and three
// chunks at every position and checks the offset Feed returns for each.
func TestFeedReportsLastBoundaryForEverySplit(t *testing.T) {
	check := func(s string, cuts []int) {
		var sc Scanner
		start := 0
		for _, end := range append(cuts, len(s)) {
			chunk := s[start:end]
			got, _ := sc.Feed([]byte(chunk))
			want := -1
			for i := start + 1; i <= end; i++ {
				if ok, _ := boundaryOracle(s[:i]); ok && endsTerminator(s, i) {
					want = i - start
				}
			}
			if got != want {
				t.Fatalf("%q cut at %v: chunk %q: Feed = %d, want %d", s, cuts, chunk, got, want)
			}
			start = end
		}
	}
	for n := 0; n <= 7; n++ {
		for _, s := range all("a\r\n", n) {
			for i := 0; i <= len(s); i++ {
				check(s, []int{i})
				for j := i; j <= len(s); j++ {
					check(s, []int{i, j})
				}
			}
		}
	}
}

// endsTerminator: position i (exclusive) follows a line-terminator byte.
func endsTerminator(s string, i int) bool {
	return i > 0 && (s[i-1] == '\n' || s[i-1] == '\r')
}

func TestFeedOnRealisticStreams(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		events       int
		boundary     bool
	}{
		{"LF", "id: 1\ndata: a\n\ndata: b\n\n", 2, true},
		{"CRLF", "id: 1\r\ndata: a\r\n\r\ndata: b\r\n\r\n", 2, true},
		{"CR", "id: 1\rdata: a\r\rdata: b\r\r", 2, true},
		{"mixed", "data: a\r\n\ndata: b\r\r\ndata: c\n\r", 3, true},
		{"open event", "data: a\n\ndata: b\n", 1, false},
		{"comment only", ": hi\n\n", 1, true},
		{"blank lines", "\n\n\r\n\r\r", 0, true},
		{"long line", "data: " + strings.Repeat("x", 1<<16), 0, false},
	} {
		var sc Scanner
		_, ev := sc.Feed([]byte(tc.stream))
		if ev != tc.events || sc.AtBoundary() != tc.boundary {
			t.Errorf("%s: events %d boundary %v, want %d %v", tc.name, ev, sc.AtBoundary(), tc.events, tc.boundary)
		}
	}
}

func TestResetPutsScannerAtBoundary(t *testing.T) {
	var sc Scanner
	sc.Feed([]byte("data: a\n"))
	if sc.AtBoundary() {
		t.Fatal("mid-event reported as boundary")
	}
	sc.Reset()
	if !sc.AtBoundary() {
		t.Fatal("Reset did not put the scanner at a boundary")
	}
}

func BenchmarkFeed(b *testing.B) {
	chunk := []byte("id: 12345\nevent: tick\ndata: {\"n\":12345,\"payload\":\"" + strings.Repeat("x", 200) + "\"}\n\n")
	var sc Scanner
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		sc.Feed(chunk)
	}
}

// completeLines splits s into its complete lines, as the HTML standard's
// parser does: each ends with CRLF, LF or CR; a last line without an end
// is left out.
func completeLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
	return lines
}

// idOracle is the HTML standard's last event id after the whole of s
// (complete events only), computed line by line.
func idOracle(s string) (string, bool) {
	var pending, committed string
	var pendingOK, has bool
	for _, line := range completeLines(s) {
		if line == "" {
			if pendingOK {
				committed, has = pending, true
			}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		// The standard ignores an id holding NUL; the proxy also ignores
		// one that no header can carry, and one too long to keep.
		if field == "id" && httpguts.ValidHeaderFieldValue(value) && len(value) <= MaxIDLen {
			pending, pendingOK = value, true
		}
	}
	return committed, has
}

func TestLastIDMatchesSpecForEverySplit(t *testing.T) {
	streams := []string{
		"id: 1\ndata: a\n\n",
		"id:2\r\ndata: b\r\n\r\nid: 3\rdata: c\r\r",
		"id: 4\ndata: x\n\nid: 5\ndata: partial",
		"id\ndata: clears\n\n",
		"id: 6\n\nidx: 7\nid : 8\n\n",
		"id: bad\x00\ndata: a\n\nid:  two spaces\n\n",
		": comment\nid: 9\n\ndata: keeps 9\n\n",
		"data: i\nid: 10\n\n",
	}
	for _, s := range streams {
		want, wantOK := idOracle(s)
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				var sc Scanner
				sc.Feed([]byte(s[:i]))
				sc.Feed([]byte(s[i:j]))
				sc.Feed([]byte(s[j:]))
				got, ok := sc.LastID()
				if string(got) != want || ok != wantOK {
					t.Fatalf("%q cut at %d,%d: LastID %q %v, want %q %v", s, i, j, got, ok, want, wantOK)
				}
			}
		}
	}
}

func TestRestartDropsThePendingEventsID(t *testing.T) {
	var sc Scanner
	sc.Feed([]byte("id: 1\ndata: a\n\nid: 2\ndata: part"))
	sc.Restart()
	sc.Feed([]byte("data: new\n\n")) // the new response's first event has no id
	if got, _ := sc.LastID(); string(got) != "1" {
		t.Fatalf("LastID %q after restart, want 1", got)
	}
	if !sc.AtBoundary() {
		t.Fatal("not at a boundary")
	}
}

func TestOverlongIDIsNotTracked(t *testing.T) {
	var sc Scanner
	sc.Feed([]byte("id: 1\n\nid: " + strings.Repeat("x", MaxIDLen+1) + "\n\n"))
	if got, _ := sc.LastID(); string(got) != "1" {
		t.Fatalf("LastID %q", got)
	}
}

func TestNextEventSplitsEventsForEveryCut(t *testing.T) {
	// An event ends at the CR of its last CRLF (the LF may not have
	// arrived yet); that LF then leads the next event, where a parser reads
	// it as an empty line that dispatches nothing.
	stream := "id: 1\ndata: a\n\n\ndata: b\r\n\r\nid: 3\rdata: c\r\rdata: open"
	want := []struct{ event, id string }{
		{"id: 1\ndata: a\n\n", "1"}, {"\ndata: b\r\n\r", "1"}, {"\nid: 3\rdata: c\r\r", "3"},
	}
	for cut := 0; cut <= len(stream); cut++ {
		var sc Scanner
		var got []string
		var gotIDs []string
		var cur []byte
		for _, chunk := range []string{stream[:cut], stream[cut:]} {
			p := []byte(chunk)
			for len(p) > 0 {
				i := sc.NextEvent(p)
				if i < 0 {
					cur = append(cur, p...)
					break
				}
				got = append(got, string(append(cur, p[:i]...)))
				id, _ := sc.LastID()
				gotIDs = append(gotIDs, string(id))
				cur, p = nil, p[i:]
			}
		}
		if len(got) != len(want) || string(cur) != "data: open" {
			t.Fatalf("cut %d: events %q, rest %q", cut, got, cur)
		}
		for i := range want {
			if got[i] != want[i].event || gotIDs[i] != want[i].id {
				t.Fatalf("cut %d: event %d = %q id %q, want %q id %q", cut, i, got[i], gotIDs[i], want[i].event, want[i].id)
			}
		}
	}
}

// maskOracle is what the client gets for s: every byte of an id field's
// value (after the one optional space) that no header value may hold,
// other than NUL, replaced by NUL.
func maskOracle(s []byte) []byte {
	out := bytes.Clone(s)
	for i := 0; i < len(s); {
		end := i
		for end < len(s) && s[end] != '\r' && s[end] != '\n' {
			end++
		}
		if line := s[i:end]; bytes.HasPrefix(line, []byte("id:")) {
			v := i + 3
			if v < end && s[v] == ' ' {
				v++
			}
			for k := v; k < end; k++ {
				if s[k] != 0 && !httpguts.ValidHeaderFieldValue(string(s[k])) {
					out[k] = 0
				}
			}
		}
		i = end + 1
	}
	return out
}

func TestHeaderUnsafeIsGosRule(t *testing.T) {
	for b := 0; b < 256; b++ {
		if b == '\r' || b == '\n' {
			continue
		}
		if got, want := HeaderUnsafe(byte(b)), !httpguts.ValidHeaderFieldValue("a"+string([]byte{byte(b)})+"a"); got != want {
			t.Errorf("HeaderUnsafe(%#x) = %v, want %v", b, got, want)
		}
	}
}

// FuzzScannerAcrossChunkSplits feeds a stream whole and cut at the places
// cuts gives, and checks that the scanner says the same either way and
// what the HTML standard says: boundaries, events, the last event id (one
// a header can carry), and the bytes relayed with unsendable ids masked.
func FuzzScannerAcrossChunkSplits(f *testing.F) {
	f.Add([]byte("id: 1\ndata: a\n\nid: a\x01b\ndata: b\n\n"), []byte{3, 9, 1})
	f.Add([]byte("id:2\r\ndata: b\r\n\r\nid: 3\rdata: c\r\r"), []byte{1, 1, 1, 5})
	f.Add([]byte(": c\n\nid\n\nid: \x7f\n\nid: \t x\x00\n\n"), []byte{2, 30})
	f.Add([]byte("data: x\r\n\r"), []byte{7})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		var whole Scanner
		wantLast, wantEvents := whole.Feed(stream)
		wantOut := whole.Masked()
		if wantOut == nil {
			wantOut = stream
		}
		if !bytes.Equal(wantOut, maskOracle(stream)) {
			t.Fatalf("masked %q, want %q", wantOut, maskOracle(stream))
		}
		atB, events := boundaryOracle(string(stream))
		if whole.AtBoundary() != atB || wantEvents != events {
			t.Fatalf("AtBoundary %v, events %d; the standard says %v, %d", whole.AtBoundary(), wantEvents, atB, events)
		}
		id, has := whole.LastID()
		wantID, wantHas := idOracle(string(stream))
		if string(id) != wantID || has != wantHas {
			t.Fatalf("LastID %q %v, the standard says %q %v", id, has, wantID, wantHas)
		}
		if !httpguts.ValidHeaderFieldValue(string(id)) {
			t.Fatalf("LastID %q cannot be a header value", id)
		}

		var split Scanner
		var out []byte
		last, total, off := -1, 0, 0
		rest := stream
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(cuts) {
				n = min(n, int(cuts[i]))
			}
			l, e := split.Feed(rest[:n])
			if m := split.Masked(); m != nil {
				out = append(out, m...)
			} else {
				out = append(out, rest[:n]...)
			}
			if l >= 0 {
				last = off + l
			}
			total += e
			off += n
			rest = rest[n:]
		}
		if last != wantLast || total != wantEvents || split.AtBoundary() != whole.AtBoundary() {
			t.Fatalf("split: last %d, events %d, at boundary %v; whole: %d, %d, %v", last, total, split.AtBoundary(), wantLast, wantEvents, whole.AtBoundary())
		}
		if sid, shas := split.LastID(); string(sid) != string(id) || shas != has {
			t.Fatalf("split: LastID %q %v; whole %q %v", sid, shas, id, has)
		}
		if !bytes.Equal(out, wantOut) {
			t.Fatalf("split: relayed %q; whole %q", out, wantOut)
		}
	})
}
