//go:build !race

package cluster

// raceEnabled reports whether this test binary has the race detector.
const raceEnabled = false
