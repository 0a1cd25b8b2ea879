//go:build race

package testcluster

// raceEnabled reports whether the test binary has the race detector, so the
// caddy under test is built the same way (and a data race in it makes the
// process exit 66, which Instance reports).
const raceEnabled = true
