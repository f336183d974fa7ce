//go:build race

package hookhttp

// raceEnabled: sync.Pool drops buffers on purpose under the race detector.
const raceEnabled = true
