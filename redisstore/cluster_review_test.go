package redisstore

import (
	"testing"
	"time"

	"github.com/sse-proxy/caddy-sse-proxy/share"
)

// The share package appends an event that does not carry an id with the
// id it inherits (the last one, as a browser's EventSource holds it) and
// Own false. It is a new event, not the upstream replaying the event it
// resumed from: it must be stored, not skipped.
func TestClusterAppendKeepsEventsThatInheritTheLastID(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	st := cluster{c}.Stream("inherit", 100)
	ctx := ctxT(t)
	tok, won, err := st.Acquire(ctx)
	if err != nil || !won {
		t.Fatalf("Acquire: %v, %v", won, err)
	}
	for _, e := range []share.Entry{
		{ID: "9", Own: true, Data: []byte("id: 9\ndata: a\n\n")},
		{ID: "9", Data: []byte("data: b\n\n")},
		{ID: "9", Data: []byte("data: c\n\n")},
		{ID: "9", Own: true, Data: []byte("id: 9\ndata: a\n\n")}, // the upstream, resumed from 9, replays 9: skipped
	} {
		if err := st.Append(ctx, tok, e); err != nil {
			t.Fatal(err)
		}
	}
	epoch, off, last, err := st.Last(ctx)
	if err != nil || off != 3 || last != "9" {
		t.Fatalf("Last = %q, %d, %q, %v; want offset 3 (a, b, c), last id 9", epoch, off, last, err)
	}
}

// A client whose Last-Event-ID is 9 has got the event that set it; the
// events after it that inherit 9 may be the ones it missed. As the
// in-process replay buffer does (buffer.Replay.After), Since resumes after
// the newest entry that set the id, not after the newest that inherits it.
func TestClusterSinceResumesAfterTheEntryThatSetTheID(t *testing.T) {
	srv := startRedis(t)
	c := testClient(t, srv.Addr(), time.Second)
	st := cluster{c}.Stream("since-own", 100)
	ctx := ctxT(t)
	tok, won, err := st.Acquire(ctx)
	if err != nil || !won {
		t.Fatalf("Acquire: %v, %v", won, err)
	}
	for _, e := range []share.Entry{
		{ID: "8", Own: true, Data: []byte("id: 8\ndata: x\n\n")},
		{ID: "9", Own: true, Data: []byte("id: 9\ndata: a\n\n")},
		{ID: "9", Data: []byte("data: b\n\n")},
		{ID: "9", Data: []byte("data: c\n\n")},
	} {
		if err := st.Append(ctx, tok, e); err != nil {
			t.Fatal(err)
		}
	}
	es, _, next, ok, err := st.Since(ctx, "9")
	if err != nil || !ok {
		t.Fatalf("Since(9): %v, %v", ok, err)
	}
	if len(es) != 2 || string(es[0].Data) != "data: b\n\n" || next != 4 {
		t.Fatalf("Since(9) = %d entries (%q...), next %d; want b and c, next 4", len(es), firstData(es), next)
	}
}

func firstData(es []share.Entry) string {
	if len(es) == 0 {
		return ""
	}
	return string(es[0].Data)
}
