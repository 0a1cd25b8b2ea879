package proxy

import "net/http"

// dropAcceptEncoding removes Accept-Encoding from h, the header of the
// upstream request made from r, when r asks for an event stream. A
// compressed stream cannot take heartbeats, and an encode handler after
// this one would compress it: the transport negotiates (and transparently
// decodes) on its own. Other requests keep the client's Accept-Encoding, so
// encode still compresses them.
func dropAcceptEncoding(r *http.Request, h http.Header) {
	if WantsStream(r) {
		delete(h, "Accept-Encoding")
	}
}
