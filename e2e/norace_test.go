//go:build !race

package e2e

// raceEnabled reports whether this test binary has the race detector, so the
// demo is built the same way and reuses the compiled packages.
const raceEnabled = false
