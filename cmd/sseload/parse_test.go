package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// record is what a test sees from the parser: events as "type|id|data" and
// comments as "#text".
type record []string

func newRecordingParser(out *record) *Parser {
	return &Parser{
		OnEvent: func(e Event) {
			*out = append(*out, fmt.Sprintf("%s|%s|%s", e.Type, e.LastID, e.Data))
		},
		OnComment: func(c []byte) { *out = append(*out, "#"+string(c)) },
	}
}

// parseChunks feeds the chunks in order and returns what the parser reported.
func parseChunks(chunks ...string) (record, int64) {
	var out record
	p := newRecordingParser(&out)
	for _, c := range chunks {
		p.Feed([]byte(c))
	}
	return out, p.Retry
}

// parserCases are streams written with "\n"; each is also tested with CRLF,
// CR and mixed line endings.
var parserCases = []struct {
	name   string
	stream string
	want   record
	retry  int64
}{
	{"single", "data: hello\n\n", record{"||hello"}, 0},
	{"multiline data", "data: a\ndata: b\ndata\ndata:c\n\n", record{"||a\nb\n\nc"}, 0},
	{"only first space stripped", "data:  two\n\n", record{"|| two"}, 0},
	{"id and type", "id: 7\nevent: tick\ndata: x\n\n", record{"tick|7|x"}, 0},
	{"id persists, type resets", "event: a\nid: 1\ndata: x\n\ndata: y\n\n", record{"a|1|x", "|1|y"}, 0},
	{"comments", ": hb\n:\ndata: x\n: mid\n\n", record{"# hb", "#", "# mid", "||x"}, 0},
	{"empty data dispatches nothing", "event: a\n\ndata: x\n\n", record{"||x"}, 0},
	{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", record{"|1|a", "|1|b"}, 0},
	{"unknown field and colon in value", "foo: bar\ndata: a:b: c\n\n", record{"||a:b: c"}, 0},
	{"retry", "retry: 1500\nretry: x1\ndata: a\n\n", record{"||a"}, 1500},
	{"unfinished event dropped", "data: a\n\ndata: b\n", record{"||a"}, 0},
	{"blank lines", "\n\n\ndata: a\n\n\n", record{"||a"}, 0},
	{"bom", bom + "data: a\n\n", record{"||a"}, 0},
	{"sseload event", "id: 12\ndata: 1700000000000000000 12 xxxx\n\n", record{"|12|1700000000000000000 12 xxxx"}, 0},
}

// lineEndings returns s with its LFs as LF, CRLF, CR, and a mix of the
// three. The mix never puts a lone-CR ending right before a line ending that
// starts with LF, which would read as one CRLF.
func lineEndings(s string) map[string]string {
	mixed := new(strings.Builder)
	ends := []string{"\r\n", "\r", "\n"}
	n, prevCR := 0, false
	for i := 0; i < len(s); i++ {
		if s[i] != '\n' {
			mixed.WriteByte(s[i])
			prevCR = false
			continue
		}
		end := ends[n%3]
		n++
		if prevCR && end[0] == '\n' {
			end = "\r"
		}
		mixed.WriteString(end)
		prevCR = end == "\r"
	}
	return map[string]string{
		"LF":    s,
		"CRLF":  strings.ReplaceAll(s, "\n", "\r\n"),
		"CR":    strings.ReplaceAll(s, "\n", "\r"),
		"mixed": mixed.String(),
	}
}

func TestParserWhole(t *testing.T) {
	for _, tc := range parserCases {
		for endName, stream := range lineEndings(tc.stream) {
			got, retry := parseChunks(stream)
			if !reflect.DeepEqual(got, tc.want) || retry != tc.retry {
				t.Errorf("%s/%s: got %q retry %d, want %q retry %d", tc.name, endName, got, retry, tc.want, tc.retry)
			}
		}
	}
}

// TestParserEverySplit feeds every stream split at every one and every pair of
// positions, so each line ending (including a CRLF torn between its CR and
// its LF, and the BOM) is seen across chunk boundaries.
func TestParserEverySplit(t *testing.T) {
	for _, tc := range parserCases {
		for endName, stream := range lineEndings(tc.stream) {
			for i := 0; i <= len(stream); i++ {
				for j := i; j <= len(stream); j++ {
					got, retry := parseChunks(stream[:i], stream[i:j], stream[j:])
					if !reflect.DeepEqual(got, tc.want) || retry != tc.retry {
						t.Fatalf("%s/%s split %d,%d: got %q, want %q", tc.name, endName, i, j, got, tc.want)
					}
				}
			}
		}
	}
}

func TestParserByteAtATime(t *testing.T) {
	for _, tc := range parserCases {
		for endName, stream := range lineEndings(tc.stream) {
			chunks := make([]string, len(stream))
			for i := 0; i < len(stream); i++ {
				chunks[i] = stream[i : i+1]
			}
			if got, _ := parseChunks(chunks...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s/%s: got %q, want %q", tc.name, endName, got, tc.want)
			}
		}
	}
}

// TestParserCRThenLFChunks checks that a CR ending one chunk and an LF
// starting the next make one line break, not two (which would dispatch).
func TestParserCRThenLFChunks(t *testing.T) {
	got, _ := parseChunks("data: a\r", "\ndata: b\r", "\n\r", "\n")
	if want := (record{"||a\nb"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// CR CR is two line breaks.
	got, _ = parseChunks("data: a\r", "\r")
	if want := (record{"||a"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParserBOMOnlyAtStart(t *testing.T) {
	got, _ := parseChunks("data: a\n\n", bom+"data: b\n\n")
	// A BOM later in the stream is part of the field name, so the line is ignored.
	if want := (record{"||a"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestParseStamp(t *testing.T) {
	for _, tc := range []struct {
		data      string
		sent      int64
		seq       uint64
		origin    int64
		hasOrigin bool
	}{
		// Without the origin field (per-stream events, older upstreams): origin is the send time.
		{"1700000000123456789 42 xxxxxxxx", 1700000000123456789, 42, 1700000000123456789, false},
		{"5 6", 5, 6, 5, false},
		{"5 6 ", 5, 6, 5, false},
		{"5 6 xo7", 5, 6, 5, false},
		// With it (broadcast events).
		{"1700000000123456789 42 o1700000000000000001 xxxx", 1700000000123456789, 42, 1700000000000000001, true},
		{"5 6 o3", 5, 6, 3, true},
		{"5 6 o3 ", 5, 6, 3, true},
		{"5 6 o3 o4", 5, 6, 3, true},
	} {
		sent, seq, origin, hasOrigin, ok := parseStamp([]byte(tc.data))
		if !ok || sent != tc.sent || seq != tc.seq || origin != tc.origin || hasOrigin != tc.hasOrigin {
			t.Errorf("parseStamp(%q) = %d %d %d %v %v, want %d %d %d %v true",
				tc.data, sent, seq, origin, hasOrigin, ok, tc.sent, tc.seq, tc.origin, tc.hasOrigin)
		}
	}
	for _, bad := range []string{"", "x 1", "12", "12 ", "12 a", " 1 2", "5 6 o", "5 6 ox", "5 6 o1x", "5 6 o 1", "5 6 o12345678901234567890"} {
		if _, _, _, _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) accepted", bad)
		}
	}
}

func BenchmarkParser(b *testing.B) {
	ev := []byte("id: 123\ndata: 1700000000123456789 123 " + strings.Repeat("x", 200) + "\n\n")
	p := &Parser{OnEvent: func(Event) {}}
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		p.Feed(ev)
	}
}
