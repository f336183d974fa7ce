package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of the Chromium that browser tests drive headless:
// SUMMON_TEST_CHROMIUM (hack/test.sh sets it from hack/chromium.sh, which installs Debian's
// chromium if it is missing), or else a chromium on PATH. Without either it skips, or fails
// under SUMMON_REQUIRE_INTEGRATION=1.
func Chromium(t testing.TB) string {
	t.Helper()
	const name = "SUMMON_TEST_CHROMIUM"
	if os.Getenv(name) == "" {
		if path, err := exec.LookPath("chromium"); err == nil {
			return path
		}
	}
	return require(t, name, `install it and point to it with: export `+name+`="$(hack/chromium.sh)" (from the repository root)`)
}
