package proxy

import (
	"fmt"
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// lastEventIDFromQuery sets Last-Event-ID in h, the header of the upstream
// request made from r, from the first of the idQuery parameters that r's
// URL carries, unless h has a Last-Event-ID already: a reconnecting
// EventSource keeps its first URL but sends a newer header, so the header
// wins. An id that no header can carry is an error wrapping ErrBadRequest.
func (s *Shaper) lastEventIDFromQuery(r *http.Request, h http.Header) error {
	if len(s.idQuery) == 0 || h.Get("Last-Event-ID") != "" || r.URL.RawQuery == "" {
		return nil
	}
	q := r.URL.Query()
	for _, name := range s.idQuery {
		if v := q.Get(name); v != "" {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("last_event_id_query %s: %w: the id holds a control character, which the Last-Event-ID header cannot carry", name, ErrBadRequest)
			}
			h.Set("Last-Event-ID", v)
			return nil
		}
	}
	return nil
}
