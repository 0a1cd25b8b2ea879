package proxy

import (
	"strings"
	"testing"
)

// Every transition the table does not list panics in tests, naming both
// states; every one it lists goes through.
func TestIllegalTransitionPanics(t *testing.T) {
	defer func(was bool) { checkTransitions = was }(checkTransitions)
	checkTransitions = true // as in the race builds every test run uses
	legal := map[[2]state]bool{
		{stateNew, statePassthrough}: true, {stateNew, stateOpen}: true, {stateNew, stateClosed}: true,
		{stateOpen, stateEnding}: true, {stateOpen, stateEnded}: true, {stateOpen, stateClosed}: true,
		{stateEnding, stateEnded}: true, {stateEnding, stateClosed}: true,
		{stateClosed, stateEnded}: true,
	}
	for from := range numStates {
		for to := range numStates {
			w := &Writer{state: from}
			var got any
			func() {
				defer func() { got = recover() }()
				w.to(to)
			}()
			switch {
			case legal[[2]state{from, to}] && got != nil:
				t.Errorf("%v → %v: panicked: %v", from, to, got)
			case legal[[2]state{from, to}] && w.state != to:
				t.Errorf("%v → %v: state is %v", from, to, w.state)
			case !legal[[2]state{from, to}] && (got == nil || !strings.Contains(got.(string), from.String()+" → "+to.String())):
				t.Errorf("%v → %v: want a panic naming the transition, got %v", from, to, got)
			}
		}
	}
}
