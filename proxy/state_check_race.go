//go:build race

package proxy

// Race builds are test builds here: check every transition (see to).
func init() { checkTransitions = true }
