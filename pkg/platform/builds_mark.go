//go:build !summon_builders_b

package platform

// testBuilderMark is empty in every build but the waves proof's "builder revision B"
// (builds_mark_b.go, build tag summon_builders_b).
const testBuilderMark = ""
