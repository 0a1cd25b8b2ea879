package proxy

import (
	"fmt"
)

// state is where a Writer's response stands. Each method of Writer reads
// its checks from it, and it changes only through Writer.to, along these
// transitions:
//
//	from            to              when
//	new             passthrough     WriteHeader: anything but 200 text/event-stream
//	new             open            WriteHeader: 200 text/event-stream
//	new             closed          Close before any header (nothing writes after it)
//	open            ending          End mid-event: relay up to the next boundary
//	open, ending    ended           finish: End at a boundary, the boundary came,
//	                                the grace ran out, Abort, or the Streams closing
//	open, ending    closed          a write to the client failed, or Close/Release
//	closed          ended           End finds that the write it cut failed; Abort
//
// passthrough and ended are final: Close and Release leave them as they
// are. In open, ending and closed the response is an event stream; only in
// open and ending does the proxy write bytes of its own (heartbeats, the
// end's hint). Orthogonal to the state, and decided once when the header
// goes out: whether the body is content-encoded (no bytes of ours at all)
// and whether sending the header failed; and, from Detach on, whether the
// body goes to a taken-over connection.
type state uint8

const (
	stateNew         state = iota // no status written yet
	statePassthrough              // not an event stream: relayed as it is
	stateOpen                     // an event stream, relayed, flushed and kept alive
	stateEnding                   // End came mid-event: relaying up to the next boundary or endBefore
	stateEnded                    // the proxy ended the stream: hint written, upstream cancelled
	stateClosed                   // the handler is done or the client gone: no bytes of ours any more
	numStates
)

var stateNames = [numStates]string{"new", "passthrough", "open", "ending", "ended", "closed"}

func (s state) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// allowed[from] has bit to set when the table above allows from → to.
var allowed = [numStates]uint8{
	stateNew:         1<<statePassthrough | 1<<stateOpen | 1<<stateClosed,
	stateOpen:        1<<stateEnding | 1<<stateEnded | 1<<stateClosed,
	stateEnding:      1<<stateEnded | 1<<stateClosed,
	stateClosed:      1 << stateEnded,
	stateEnded:       0,
	statePassthrough: 0,
}

// stream reports whether the response is an event stream (the header
// went out as one), whatever became of it since.
func (s state) stream() bool {
	return s == stateOpen || s == stateEnding || s == stateEnded || s == stateClosed
}

// live reports whether the proxy still writes bytes of its own to the
// stream (heartbeats, the end's hint) and may move or restart it.
func (s state) live() bool { return s == stateOpen || s == stateEnding }

// checkTransitions makes an illegal transition panic. It is on in builds
// with the race detector (state_check_race.go), which every test run of
// this repository uses, root and e2e packages included: there the panic
// names the bug. In production the writer goes on in the state asked for,
// as it would have before the table existed, and the binary does not take
// in the testing package.
var checkTransitions = false

// to moves the writer to state s. Callers hold mu.
func (w *Writer) to(s state) {
	if checkTransitions && allowed[w.state]&(1<<s) == 0 {
		panic(fmt.Sprintf("sse_proxy: proxy.Writer: illegal transition %v → %v", w.state, s))
	}
	w.state = s
}
