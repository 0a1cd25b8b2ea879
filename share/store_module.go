package share

import "github.com/caddyserver/caddy/v2"

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// StoreModule is a guest module in the namespace
// http.handlers.sse_proxy.stores: where the shared streams of a handler
// keep and order their events.
type StoreModule interface {
	// Cluster is the store as hubs use it: nil for the in-process store,
	// a store shared by several processes otherwise.
	Cluster() Cluster
}

// MemoryStore is the in-process store, the default
// (http.handlers.sse_proxy.stores.memory): each Caddy process shares and
// replays its streams on its own.
type MemoryStore struct{}

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.sse_proxy.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// Cluster is nil: the process is the whole story.
func (MemoryStore) Cluster() Cluster { return nil }

// Interface guards
var _ StoreModule = MemoryStore{}
