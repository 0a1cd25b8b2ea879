package proxy

import (
	"net/http"
	"strings"
)

// WantsStream reports whether the client asked for an event stream, as
// EventSource always does with Accept: text/event-stream.
func WantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for v != "" {
			var mt string
			mt, v, _ = strings.Cut(v, ",")
			if IsEventStream(mt) {
				return true
			}
		}
	}
	return false
}
