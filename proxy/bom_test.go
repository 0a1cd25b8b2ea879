package proxy

import (
	"reflect"
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/internal/testcaddy"
)

const bom = "\ufeff"

// TestUpstreamBOMReachesThePageAsWithoutTheProxy writes upstream bodies in
// the given pieces and checks the client's bytes exactly, and that a
// browser parsing them sees the events it would see reading each upstream
// response itself (it strips one BOM from the start of each).
func TestUpstreamBOMReachesThePageAsWithoutTheProxy(t *testing.T) {
	cases := []struct {
		name  string
		opts  Options
		tick  bool       // a heartbeat before the upstream's first bytes
		resps [][]string // upstream responses, each in pieces
		want  string
	}{
		{name: "one BOM, nothing before it: passed, the browser strips it",
			resps: [][]string{{bom + "data: 1\n\n"}}, want: bom + "data: 1\n\n"},
		{name: "two BOMs: the second stays data",
			resps: [][]string{{bom + bom + "data: 1\n\ndata: 2\n\n"}}, want: bom + bom + "data: 1\n\ndata: 2\n\n"},
		{name: "one BOM after retry: dropped",
			opts:  Options{Retry: time.Second},
			resps: [][]string{{bom + "data: 1\n\n"}}, want: "retry: 1000\ndata: 1\n\n"},
		{name: "two BOMs after retry: one dropped",
			opts:  Options{Retry: time.Second},
			resps: [][]string{{bom + bom + "data: 1\n\ndata: 2\n\n"}}, want: "retry: 1000\n" + bom + "data: 1\n\ndata: 2\n\n"},
		{name: "split across writes",
			resps: [][]string{{"\xef", "\xbb", "\xbf\xef\xbb", "\xbfdata: 1\n\ndata: 2\n\n"}}, want: bom + bom + "data: 1\n\ndata: 2\n\n"},
		{name: "split across writes after retry",
			opts:  Options{Retry: time.Second},
			resps: [][]string{{"\xef", "\xbb", "\xbfdata: 1\n\n"}}, want: "retry: 1000\ndata: 1\n\n"},
		{name: "after a heartbeat: dropped",
			opts: Options{Heartbeat: time.Hour}, tick: true,
			resps: [][]string{{bom + "data: 1\n\n"}}, want: ":\ndata: 1\n\n"},
		{name: "a reconnect's BOM: dropped, its second BOM stays data",
			opts:  Options{MaxEventSize: 1 << 10},
			resps: [][]string{{bom + "data: 1\n\n"}, {bom + bom + "data: 2\n\ndata: 3\n\n"}}, want: bom + "data: 1\n\n" + bom + "data: 2\n\ndata: 3\n\n"},
		{name: "a reconnect into an empty body: passed",
			opts:  Options{MaxEventSize: 1 << 10},
			resps: [][]string{{"data: never complete"}, {bom + bom + "data: 2\n\ndata: 3\n\n"}}, want: bom + bom + "data: 2\n\ndata: 3\n\n"},
		{name: "an id on the BOM's line counts",
			resps: [][]string{{bom + "id: 7\ndata: 1\n\n"}}, want: bom + "id: 7\ndata: 1\n\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, rec, _ := startStream(t, &c.opts, nil)
			if c.tick {
				forceTick(w, rec)
			}
			var direct []testcaddy.Event
			for i, resp := range c.resps {
				if i > 0 && !w.Restart() {
					t.Fatal("Restart refused")
				}
				body := ""
				for _, p := range resp {
					if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
						t.Fatalf("Write(%q) = %d, %v", p, n, err)
					}
					body += p
				}
				events, _, _ := testcaddy.ParseEvents([]byte(body))
				direct = append(direct, events...)
			}
			if got := rec.body(); got != c.want {
				t.Errorf("client got %q, want %q", got, c.want)
			}
			if got, _, _ := testcaddy.ParseEvents([]byte(rec.body())); !reflect.DeepEqual(got, direct) {
				t.Errorf("the page sees %+v, without the proxy %+v", got, direct)
			}
		})
	}
}

func TestPassedBOMKeepsTheFirstLinesID(t *testing.T) {
	w, _, _ := startStream(t, &Options{}, nil)
	w.Write([]byte(bom + "id: 7\ndata: 1\n\n"))
	if id, ok := w.LastEventID(); !ok || id != "7" {
		t.Errorf("LastEventID %q %v, want 7", id, ok)
	}
}

func TestHeartbeatBehindAPassedBOMWhileAnEventIsHeld(t *testing.T) {
	w, rec, _ := startStream(t, &Options{Heartbeat: time.Hour, MaxEventSize: 1 << 10}, nil)
	w.Write([]byte(bom + "data: 1\n"))
	forceTick(w, rec) // the BOM went out alone; the event is held
	w.Write([]byte("\n"))
	if got, want := rec.body(), bom+":\ndata: 1\n\n"; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
	if got, _, _ := testcaddy.ParseEvents([]byte(rec.body())); len(got) != 1 || got[0].Data != "1" {
		t.Errorf("the page sees %+v", got)
	}
}
