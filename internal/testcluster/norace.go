//go:build !race

package testcluster

// raceEnabled reports whether the test binary has the race detector.
const raceEnabled = false
