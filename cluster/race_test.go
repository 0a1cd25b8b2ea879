//go:build race

package cluster

// raceEnabled reports whether this test binary has the race detector, so the
// caddy under test is built the same way (and a data race in it makes the
// process exit 66, which the test reports).
const raceEnabled = true
