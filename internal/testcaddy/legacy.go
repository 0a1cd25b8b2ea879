package testcaddy

import "net/http"

// LegacyHeaders answers 200 with the headers a typical legacy (Express) SSE
// backend sends, HTTP/1.1 connection fields and a wildcard CORS policy
// included, and flushes them.
func LegacyHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// Send writes s and flushes, as a legacy backend does per event.
func Send(w http.ResponseWriter, s string) {
	_, _ = w.Write([]byte(s))
	w.(http.Flusher).Flush()
}
