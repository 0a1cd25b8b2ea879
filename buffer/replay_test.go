package buffer

import (
	"fmt"
	"math/rand"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ev builds an event with its own id and data of size n.
func ev(id string, n int, at time.Time) Event {
	return Event{Data: make([]byte, n), ID: id, OwnID: true, At: at}
}

// ids returns the ids of evs, marking events without an own id with a '~'.
func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
		if !e.OwnID {
			out[i] = "~" + e.ID
		}
	}
	return out
}

// held returns the ids of every event held, oldest first.
func held(r *Replay) []string {
	out := make([]string, 0, r.Len())
	for i := 0; i < r.n; i++ {
		e := r.ring[r.at(i)]
		id := e.ID
		if !e.OwnID {
			id = "~" + id
		}
		out = append(out, id)
	}
	return out
}

func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkInvariants verifies the byte count and that slots outside the window
// are zero (so evicted Data is not kept alive).
func checkInvariants(t *testing.T, r *Replay) {
	t.Helper()
	sum := 0
	for i := 0; i < r.n; i++ {
		sum += len(r.ring[r.at(i)].Data)
	}
	if sum != r.Bytes() {
		t.Fatalf("Bytes() = %d, events hold %d", r.Bytes(), sum)
	}
	for i := r.n; i < len(r.ring); i++ {
		e := r.ring[r.at(i)]
		if e.Data != nil || e.ID != "" || e.OwnID || !e.At.IsZero() {
			t.Fatalf("slot %d outside the window is not zero: %+v", r.at(i), e)
		}
	}
	if r.lim.MaxEvents > 0 && r.Len() > r.lim.MaxEvents {
		t.Fatalf("Len() = %d > MaxEvents %d", r.Len(), r.lim.MaxEvents)
	}
	if r.lim.MaxEvents > 0 && len(r.ring) > r.lim.MaxEvents {
		t.Fatalf("ring capacity %d > MaxEvents %d", len(r.ring), r.lim.MaxEvents)
	}
	if r.Bytes() > r.lim.MaxBytes {
		t.Fatalf("Bytes() = %d > MaxBytes %d", r.Bytes(), r.lim.MaxBytes)
	}
}

func TestNewReplayInvalid(t *testing.T) {
	for _, l := range []ReplayLimits{
		{},
		{MaxEvents: 10},
		{MaxBytes: -1},
		{MaxBytes: 10, MaxEvents: -1},
		{MaxBytes: 10, MaxAge: -time.Second},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewReplay(%+v) did not panic", l)
				}
			}()
			NewReplay(l)
		}()
	}
}

func TestReplayEmpty(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	if r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("empty: Len %d Bytes %d", r.Len(), r.Bytes())
	}
	if evs, ok := r.After("", t0); ok || evs != nil {
		t.Fatalf("After on empty = %v, %v", evs, ok)
	}
	if evs, ok := r.After("1", t0); ok || evs != nil {
		t.Fatalf("After on empty = %v, %v", evs, ok)
	}
}

func TestReplayMaxEvents(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxEvents: 3, MaxBytes: 1 << 20})
	for i := 1; i <= 5; i++ {
		r.Add(ev(strconv.Itoa(i), 10, t0), t0)
		checkInvariants(t, r)
	}
	if got, want := held(r), []string{"3", "4", "5"}; !eq(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	if r.Len() != 3 || r.Bytes() != 30 {
		t.Fatalf("Len %d Bytes %d, want 3 30", r.Len(), r.Bytes())
	}
	if _, ok := r.After("2", t0); ok {
		t.Fatal("After(evicted id) matched")
	}
	evs, ok := r.After("3", t0)
	if !ok || !eq(ids(evs), []string{"4", "5"}) {
		t.Fatalf("After(3) = %v, %v", ids(evs), ok)
	}
}

func TestReplayMaxEventsOne(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxEvents: 1, MaxBytes: 100})
	for i := 0; i < 5; i++ {
		r.Add(ev(strconv.Itoa(i), 1, t0), t0)
		checkInvariants(t, r)
		if got := held(r); !eq(got, []string{strconv.Itoa(i)}) {
			t.Fatalf("held %v after adding %d", got, i)
		}
		evs, ok := r.After(strconv.Itoa(i), t0)
		if !ok || evs == nil || len(evs) != 0 {
			t.Fatalf("After(newest) = %v, %v; want empty non-nil, true", evs, ok)
		}
	}
}

func TestReplayMaxBytes(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	r.Add(ev("a", 40, t0), t0)
	r.Add(ev("b", 40, t0), t0)
	r.Add(ev("c", 20, t0), t0) // exactly 100: all kept
	checkInvariants(t, r)
	if got := held(r); !eq(got, []string{"a", "b", "c"}) {
		t.Fatalf("held %v at exactly MaxBytes", got)
	}
	r.Add(ev("d", 1, t0), t0) // 101: a goes
	checkInvariants(t, r)
	if got := held(r); !eq(got, []string{"b", "c", "d"}) || r.Bytes() != 61 {
		t.Fatalf("held %v, Bytes %d", got, r.Bytes())
	}
	r.Add(ev("e", 90, t0), t0) // 151: b and c go, d stays (91)
	checkInvariants(t, r)
	if got := held(r); !eq(got, []string{"d", "e"}) || r.Bytes() != 91 {
		t.Fatalf("held %v, Bytes %d", got, r.Bytes())
	}
	r.Add(ev("f", 100, t0), t0) // exactly MaxBytes on its own: kept alone
	checkInvariants(t, r)
	if got := held(r); !eq(got, []string{"f"}) || r.Bytes() != 100 {
		t.Fatalf("held %v, Bytes %d", got, r.Bytes())
	}
}

func TestReplayOversized(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxEvents: 10, MaxBytes: 100})
	r.Add(ev("a", 10, t0), t0)
	r.Add(ev("b", 10, t0), t0)
	r.Add(ev("big", 101, t0), t0)
	checkInvariants(t, r)
	if r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("after an oversized event: Len %d Bytes %d, want 0 0", r.Len(), r.Bytes())
	}
	for _, id := range []string{"a", "b", "big"} {
		if _, ok := r.After(id, t0); ok {
			t.Fatalf("After(%q) matched after an oversized event", id)
		}
	}
	// The buffer keeps working afterwards.
	r.Add(ev("c", 10, t0), t0)
	r.Add(ev("d", 10, t0), t0)
	checkInvariants(t, r)
	evs, ok := r.After("c", t0)
	if !ok || !eq(ids(evs), []string{"d"}) {
		t.Fatalf("After(c) = %v, %v", ids(evs), ok)
	}
}

func TestReplayMaxAge(t *testing.T) {
	const age = time.Minute
	r := NewReplay(ReplayLimits{MaxAge: age, MaxBytes: 1 << 20})
	for i := 0; i < 5; i++ {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		r.Add(ev(strconv.Itoa(i), 1, at), at)
		checkInvariants(t, r)
	}
	if r.Len() != 5 {
		t.Fatalf("Len %d, want 5", r.Len())
	}
	// At t0+60s event 0 is exactly MaxAge old: still kept.
	evs, ok := r.After("0", t0.Add(age))
	if !ok || !eq(ids(evs), []string{"1", "2", "3", "4"}) {
		t.Fatalf("After(0) at exactly MaxAge = %v, %v", ids(evs), ok)
	}
	// One nanosecond later it is too old.
	if evs, ok := r.After("0", t0.Add(age+1)); ok || evs != nil {
		t.Fatalf("After(too old) = %v, %v", ids(evs), ok)
	}
	checkInvariants(t, r)
	if r.Len() != 4 {
		t.Fatalf("After did not drop the expired event: Len %d", r.Len())
	}
	// At t0+80s event 1 (t0+10s) is too old, event 2 (t0+20s) just kept.
	evs, ok = r.After("2", t0.Add(age+20*time.Second))
	if !ok || !eq(ids(evs), []string{"3", "4"}) {
		t.Fatalf("After(2) = %v, %v", ids(evs), ok)
	}
	if r.Len() != 3 {
		t.Fatalf("Len %d, want 3", r.Len())
	}
	// Add expires too.
	late := t0.Add(10 * time.Minute)
	r.Add(ev("5", 1, late), late)
	checkInvariants(t, r)
	if got := held(r); !eq(got, []string{"5"}) || r.Bytes() != 1 {
		t.Fatalf("held %v, Bytes %d after a late Add", got, r.Bytes())
	}
	// Everything expires.
	if _, ok := r.After("5", late.Add(age+1)); ok {
		t.Fatal("After matched an expired event")
	}
	if r.Len() != 0 || r.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after all expired", r.Len(), r.Bytes())
	}
}

func TestReplayNoMaxAge(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	r.Add(ev("a", 1, t0), t0)
	far := t0.Add(1000 * time.Hour)
	r.Add(ev("b", 1, far), far)
	evs, ok := r.After("a", far.Add(1000*time.Hour))
	if !ok || !eq(ids(evs), []string{"b"}) {
		t.Fatalf("After(a) without MaxAge = %v, %v", ids(evs), ok)
	}
}

func TestReplayAfterUnknown(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	r.Add(ev("1", 1, t0), t0)
	r.Add(ev("2", 1, t0), t0)
	for _, id := range []string{"", "3", "12", " 1", "1 "} {
		if evs, ok := r.After(id, t0); ok || evs != nil {
			t.Fatalf("After(%q) = %v, %v", id, ids(evs), ok)
		}
	}
	evs, ok := r.After("1", t0)
	if !ok || !eq(ids(evs), []string{"2"}) {
		t.Fatalf("After(1) = %v, %v", ids(evs), ok)
	}
}

func TestReplayDuplicateIDs(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	for _, id := range []string{"x", "a", "x", "b", "c"} {
		r.Add(ev(id, 1, t0), t0)
	}
	evs, ok := r.After("x", t0)
	if !ok || !eq(ids(evs), []string{"b", "c"}) {
		t.Fatalf("After(x) = %v, %v; want the newest x to win", ids(evs), ok)
	}
}

func TestReplayNoOwnID(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 100})
	add := func(id string, own bool) {
		r.Add(Event{Data: []byte("data: x\n\n"), ID: id, OwnID: own, At: t0}, t0)
	}
	add("", false) // before any id
	add("1", true)
	add("1", false) // id 1 still in effect
	add("1", false)
	add("2", true)
	add("2", false)
	evs, ok := r.After("1", t0)
	if !ok || !eq(ids(evs), []string{"~1", "~1", "2", "~2"}) {
		t.Fatalf("After(1) = %v, %v; events without an own id must not match", ids(evs), ok)
	}
	evs, ok = r.After("2", t0)
	if !ok || !eq(ids(evs), []string{"~2"}) {
		t.Fatalf("After(2) = %v, %v", ids(evs), ok)
	}
	if _, ok := r.After("", t0); ok {
		t.Fatal("After(\"\") matched an event without an own id")
	}

	// An id carried only by events without OwnID (its own event was
	// evicted) does not match.
	r = NewReplay(ReplayLimits{MaxEvents: 2, MaxBytes: 100})
	add("7", true)
	add("7", false)
	add("7", false)
	if _, ok := r.After("7", t0); ok {
		t.Fatal("After(7) matched though the event that set id 7 is gone")
	}

	// An event that sets the empty id (an "id" line with no value) matches "".
	r = NewReplay(ReplayLimits{MaxBytes: 100})
	add("3", true)
	add("", true)
	add("", false)
	evs, ok = r.After("", t0)
	if !ok || !eq(ids(evs), []string{"~"}) {
		t.Fatalf("After(\"\") = %v, %v", ids(evs), ok)
	}
}

func TestReplayAfterFreshSlice(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxEvents: 4, MaxBytes: 100})
	for i := 0; i < 6; i++ { // wrapped
		r.Add(Event{Data: []byte{byte('0' + i)}, ID: strconv.Itoa(i), OwnID: true, At: t0}, t0)
	}
	evs, ok := r.After("2", t0)
	if !ok || !eq(ids(evs), []string{"3", "4", "5"}) {
		t.Fatalf("After(2) = %v, %v", ids(evs), ok)
	}
	for i := range evs {
		evs[i] = Event{ID: "clobbered"}
	}
	_ = append(evs[:0], Event{ID: "appended"})
	evs, ok = r.After("2", t0)
	if !ok || !eq(ids(evs), []string{"3", "4", "5"}) {
		t.Fatalf("After(2) after modifying the returned slice = %v, %v", ids(evs), ok)
	}
	for i, e := range evs {
		if string(e.Data) != string(rune('3'+i)) {
			t.Fatalf("event %d data %q", i, e.Data)
		}
	}
	checkInvariants(t, r)
}

func TestReplayWrapAround(t *testing.T) {
	for _, capacity := range []int{1, 2, 3, 7, 16, 17, 33} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			r := NewReplay(ReplayLimits{MaxEvents: capacity, MaxBytes: 1 << 20})
			total := 10 * capacity
			for i := 0; i < total; i++ {
				r.Add(Event{Data: []byte(strconv.Itoa(i)), ID: strconv.Itoa(i), OwnID: true, At: t0}, t0)
				checkInvariants(t, r)
				// Every event still held is in order after every other.
				first := i - r.Len() + 1
				if want := min(i+1, capacity); r.Len() != want {
					t.Fatalf("after %d adds Len %d, want %d", i+1, r.Len(), want)
				}
				for j := first; j <= i; j++ {
					evs, ok := r.After(strconv.Itoa(j), t0)
					if !ok || len(evs) != i-j {
						t.Fatalf("after %d adds, After(%d) = %d events, %v", i+1, j, len(evs), ok)
					}
					for k, e := range evs {
						if want := strconv.Itoa(j + 1 + k); e.ID != want || string(e.Data) != want {
							t.Fatalf("after %d adds, After(%d)[%d] = %q/%q, want %s",
								i+1, j, k, e.ID, e.Data, want)
						}
					}
				}
				if first > 0 {
					if _, ok := r.After(strconv.Itoa(first-1), t0); ok {
						t.Fatalf("after %d adds, evicted id %d matched", i+1, first-1)
					}
				}
			}
			if len(r.ring) != capacity {
				t.Fatalf("ring capacity %d, want %d", len(r.ring), capacity)
			}
		})
	}
}

// TestReplayGrowUnbounded checks the ring growing past its initial size
// with no MaxEvents bound, with the window wrapped when it grows.
func TestReplayGrowUnbounded(t *testing.T) {
	r := NewReplay(ReplayLimits{MaxBytes: 1000})
	// Events of 10 bytes; the bytes bound keeps at most 100 of them, so
	// the ring grows to hold them while the head moves along.
	for i := 0; i < 1000; i++ {
		r.Add(ev(strconv.Itoa(i), 10, t0), t0)
		checkInvariants(t, r)
		if i%37 == 0 {
			// Shrink the window so that growth later happens wrapped.
			r.Add(ev("pad"+strconv.Itoa(i), 500, t0), t0)
			checkInvariants(t, r)
		}
	}
	got := held(r)
	evs, ok := r.After(got[0], t0)
	if !ok || !eq(ids(evs), got[1:]) {
		t.Fatalf("After(oldest) = %v, %v; held %v", ids(evs), ok, got)
	}
}

// model is a naive replay buffer to compare Replay against.
type model struct {
	lim ReplayLimits
	evs []Event
}

func (m *model) bytes() int {
	n := 0
	for _, e := range m.evs {
		n += len(e.Data)
	}
	return n
}

func (m *model) expire(now time.Time) {
	if m.lim.MaxAge == 0 {
		return
	}
	for len(m.evs) > 0 && now.Sub(m.evs[0].At) > m.lim.MaxAge {
		m.evs = m.evs[1:]
	}
}

func (m *model) add(e Event, now time.Time) {
	if len(e.Data) > m.lim.MaxBytes {
		m.evs = nil
		return
	}
	m.evs = append(m.evs, e)
	for (m.lim.MaxEvents > 0 && len(m.evs) > m.lim.MaxEvents) || m.bytes() > m.lim.MaxBytes {
		m.evs = m.evs[1:]
	}
	m.expire(now)
}

func (m *model) after(id string, now time.Time) ([]Event, bool) {
	m.expire(now)
	for i := len(m.evs) - 1; i >= 0; i-- {
		if m.evs[i].OwnID && m.evs[i].ID == id {
			return m.evs[i+1:], true
		}
	}
	return nil, false
}

func TestReplayRandomAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 300; round++ {
		l := ReplayLimits{
			MaxEvents: rng.Intn(12),
			MaxBytes:  1 + rng.Intn(60),
		}
		if rng.Intn(2) == 0 {
			l.MaxAge = time.Duration(1+rng.Intn(20)) * time.Second
		}
		r, m := NewReplay(l), &model{lim: l}
		now := t0
		id, seq := "", 0
		for step := 0; step < 400; step++ {
			now = now.Add(time.Duration(rng.Intn(3)) * time.Second)
			if rng.Intn(3) > 0 {
				own := rng.Intn(3) > 0
				if own {
					id = strconv.Itoa(rng.Intn(8)) // small id space: duplicates
				}
				seq++
				e := Event{Data: []byte(fmt.Sprintf("%d%s", seq, make([]byte, rng.Intn(l.MaxBytes+3)))),
					ID: id, OwnID: own, At: now}
				r.Add(e, now)
				m.add(e, now)
			} else {
				q := strconv.Itoa(rng.Intn(9))
				got, gok := r.After(q, now)
				want, wok := m.after(q, now)
				if gok != wok || len(got) != len(want) {
					t.Fatalf("round %d step %d %+v: After(%s) = %d, %v; model %d, %v",
						round, step, l, q, len(got), gok, len(want), wok)
				}
				if gok && got == nil {
					t.Fatalf("After matched but returned nil")
				}
				for i := range got {
					if string(got[i].Data) != string(want[i].Data) {
						t.Fatalf("round %d step %d: After(%s)[%d] differs", round, step, q, i)
					}
				}
			}
			checkInvariants(t, r)
			if r.Len() != len(m.evs) || r.Bytes() != m.bytes() {
				t.Fatalf("round %d step %d %+v: Len %d Bytes %d; model %d %d",
					round, step, l, r.Len(), r.Bytes(), len(m.evs), m.bytes())
			}
			for i, e := range m.evs {
				if string(r.ring[r.at(i)].Data) != string(e.Data) {
					t.Fatalf("round %d step %d: event %d differs", round, step, i)
				}
			}
		}
	}
}

func TestReplayAddAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	r := NewReplay(ReplayLimits{MaxEvents: 64, MaxAge: time.Hour, MaxBytes: 1 << 20})
	data := []byte("id: 1\ndata: hello\n\n")
	e := Event{Data: data, ID: "1", OwnID: true, At: t0}
	for i := 0; i < 200; i++ { // warm: the ring is at full size
		r.Add(e, t0)
	}
	if n := testing.AllocsPerRun(1000, func() { r.Add(e, t0) }); n != 0 {
		t.Fatalf("warm Add allocates %v times", n)
	}
}

func BenchmarkReplayAdd(b *testing.B) {
	data := []byte("id: 12345\ndata: {\"hello\":\"world\"}\n\n")
	for _, bc := range []struct {
		name string
		l    ReplayLimits
	}{
		{"events", ReplayLimits{MaxEvents: 1024, MaxBytes: 1 << 30}},
		{"bytes", ReplayLimits{MaxBytes: 64 << 10}},
		{"age", ReplayLimits{MaxAge: time.Millisecond, MaxBytes: 1 << 30}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReplay(bc.l)
			now := t0
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				now = now.Add(time.Microsecond)
				r.Add(Event{Data: data, ID: "12345", OwnID: true, At: now}, now)
			}
		})
	}
}

func BenchmarkReplayAfter(b *testing.B) {
	r := NewReplay(ReplayLimits{MaxEvents: 1024, MaxBytes: 1 << 30})
	data := []byte("data: x\n\n")
	for i := 0; i < 1024; i++ {
		r.Add(Event{Data: data, ID: strconv.Itoa(i), OwnID: true, At: t0}, t0)
	}
	b.ReportAllocs()
	for b.Loop() {
		if evs, ok := r.After("1013", t0); !ok || len(evs) != 10 {
			b.Fatal(len(evs), ok)
		}
	}
}

// FuzzReplayAgainstModel runs the operations ops spells (add an event, with
// or without an id of its own, some bytes and seconds later; or look an id
// up) on a Replay and on the naive model, under limits from the first
// bytes, and checks that they agree at every step.
func FuzzReplayAgainstModel(f *testing.F) {
	f.Add([]byte{5, 40, 1, 0x13, 0x25, 0x07, 0x80, 0x91, 0x13, 0x80})
	f.Add([]byte{0, 3, 0, 0x7f, 0x7f, 0x7f, 0x81, 0x81})
	f.Add([]byte{1, 1, 9, 0x40, 0x41, 0x80, 0x42, 0x81})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 3 || len(ops) > 2048 {
			t.Skip()
		}
		l := ReplayLimits{MaxEvents: int(ops[0] % 16), MaxBytes: 1 + int(ops[1]%64), MaxAge: time.Duration(ops[2]%8) * time.Second}
		r, m := NewReplay(l), &model{lim: l}
		now, id, seq := t0, "", 0
		for step, op := range ops[3:] {
			if op&0x80 == 0 {
				// Add: bits 0-3 size, bits 4-5 seconds later, bit 6 own id.
				now = now.Add(time.Duration(op>>4&3) * time.Second)
				own := op&0x40 != 0
				if own {
					id = strconv.Itoa(step % 5) // a small id space: duplicates
				}
				seq++
				e := Event{Data: []byte(fmt.Sprintf("%d%s", seq, make([]byte, int(op&0xf)*l.MaxBytes/12))), ID: id, OwnID: own, At: now}
				r.Add(e, now)
				m.add(e, now)
			} else {
				// After: bits 0-2 the id, bits 3-4 seconds later.
				now = now.Add(time.Duration(op>>3&3) * time.Second)
				q := strconv.Itoa(int(op & 7))
				got, gok := r.After(q, now)
				want, wok := m.after(q, now)
				if gok != wok || len(got) != len(want) || (gok && got == nil) {
					t.Fatalf("step %d %+v: After(%s) = %d, %v; model %d, %v", step, l, q, len(got), gok, len(want), wok)
				}
				for i := range got {
					if string(got[i].Data) != string(want[i].Data) || got[i].ID != want[i].ID {
						t.Fatalf("step %d: After(%s)[%d] differs", step, q, i)
					}
				}
			}
			checkInvariants(t, r)
			if r.Len() != len(m.evs) || r.Bytes() != m.bytes() {
				t.Fatalf("step %d %+v: Len %d Bytes %d; model %d %d", step, l, r.Len(), r.Bytes(), len(m.evs), m.bytes())
			}
		}
	})
}
