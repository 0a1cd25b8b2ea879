package buffer

import (
	"strconv"
	"strings"
	"testing"
)

// retryOracle is the HTML standard's reconnection time after the complete
// lines of s: the last retry field whose value is only ASCII digits (and
// not empty), computed line by line.
func retryOracle(s string) (uint64, bool) {
	var ms uint64
	var ok bool
	for _, line := range completeLines(s) {
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		if field != "retry" || value == "" || strings.Trim(value, "0123456789") != "" {
			continue
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil || n > maxRetry {
			n = maxRetry
		}
		ms, ok = n, true
	}
	return ms, ok
}

func TestRetryMatchesSpecForEverySplit(t *testing.T) {
	streams := []string{
		"retry: 3000\ndata: a\n\n",
		"retry:15000\r\n\r\n",
		"data: a\nretry: 250\rdata: b\r\r",
		"retry: 100\n\nretry\n\nretry:\n\nretry: \n\n",    // empty values are ignored
		"retry: 100\n\nretry: 1x\n\nretry: -5\n\n",        // and so are non-digits
		"retry: 100\n\nretry:  200\n\nretry : 300\n\n",    // two spaces, a space before the colon
		"retry: 100\n\nretryx: 200\n\nretr: 300\n\nr\n\n", // other field names
		"retry: 7\ndata: an event never completed",        // takes effect at its line's end
		"retry: 8",                           // but not before
		"retry: 99999999999999999999999\n\n", // saturates
		"id: 1\nretry: 0\n\n: retry: 5\n\n",  // zero counts; a comment does not
	}
	for _, s := range streams {
		want, wantOK := retryOracle(s)
		for i := 0; i <= len(s); i++ {
			for j := i; j <= len(s); j++ {
				var sc Scanner
				sc.Feed([]byte(s[:i]))
				sc.Feed([]byte(s[i:j]))
				sc.Feed([]byte(s[j:]))
				got, ok := sc.Retry()
				if got != want || ok != wantOK {
					t.Fatalf("%q cut at %d,%d: Retry %d %v, want %d %v", s, i, j, got, ok, want, wantOK)
				}
			}
		}
	}
}

func TestRetryFieldDoesNotDisturbBoundariesOrIDs(t *testing.T) {
	s := "retry: 10\nid: 4\ndata: a\n\nretry\rid: 5\r\r"
	var sc Scanner
	last, events := sc.Feed([]byte(s))
	if last != len(s) || events != 2 || !sc.AtBoundary() {
		t.Fatalf("Feed = %d, %d, at boundary %v", last, events, sc.AtBoundary())
	}
	if id, _ := sc.LastID(); string(id) != "5" {
		t.Fatalf("LastID %q", id)
	}
}

func TestRetryOutlivesRestartAndReset(t *testing.T) {
	var sc Scanner
	sc.Feed([]byte("retry: 3000\ndata: part"))
	sc.Restart()
	sc.Reset()
	sc.Feed([]byte("data: next\n\n"))
	if ms, ok := sc.Retry(); ms != 3000 || !ok {
		t.Fatalf("Retry %d %v after a restart, want 3000", ms, ok)
	}
}
