package share

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
)

// StreamInfo describes one of this process's shared streams, for the admin
// API.
type StreamInfo struct {
	// KeyHash names the stream without showing its key (the key covers
	// the clients' credentials); a Redis store names its keys with it.
	KeyHash string `json:"key_hash"`
	// Clients connected to this process.
	Clients int `json:"clients"`
	// Role is "local" without a cluster store; with one, "holder" (this
	// process reads the upstream), "follower", or "local" while the store
	// is unreachable.
	Role string `json:"role"`
	// LeaseHolder names the process that reads the upstream, as last seen
	// (cluster stores only).
	LeaseHolder string `json:"lease_holder,omitempty"`
	// LastID is the id of the newest event with one that this process
	// delivered.
	LastID string `json:"last_id"`
	// ReplayDepth is the number of events this process keeps for replay.
	ReplayDepth int `json:"replay_depth"`
}

// keyHash is the short name of a key: the first 16 hex digits of its
// SHA-256.
func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:8])
}

// Streams lists the running shared streams of this process, by key hash.
func Streams() []StreamInfo {
	registryMu.Lock()
	hubs := make([]*Hub, 0, len(registry))
	for _, h := range registry {
		hubs = append(hubs, h)
	}
	registryMu.Unlock()
	out := make([]StreamInfo, 0, len(hubs))
	for _, h := range hubs {
		out = append(out, h.info())
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return cmp.Compare(a.KeyHash, b.KeyHash) })
	return out
}

// info describes the hub for the admin API. It takes h.mu, then (not
// nested) the link's lock.
func (h *Hub) info() StreamInfo {
	h.mu.Lock()
	i := StreamInfo{KeyHash: keyHash(h.key), Clients: len(h.subs), Role: "local", LastID: h.lastID}
	if r, ok := h.history.(interface{ Len() int }); ok {
		i.ReplayDepth = r.Len()
	}
	h.mu.Unlock()
	if h.link != nil {
		r, holder := h.link.info()
		i.Role, i.LeaseHolder = r.String(), holder
	}
	return i
}
