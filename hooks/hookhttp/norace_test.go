//go:build !race

package hookhttp

const raceEnabled = false
