//go:build summon_builders_b

package platform

// testBuilderMark makes this build's builders differ from production's as a release's would:
// one more annotation in every app pod template (test/waves, build tag summon_builders_b). It is
// never compiled into a release.
const testBuilderMark = "b"
