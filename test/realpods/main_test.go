// Package realpods proves, on a real node (internal/testing/realnode: kubelet, containerd,
// kube-proxy), what kwok's pods can't show: that a rollout of Summon's serving children (web,
// Daphne, static, as pkg/children builds them) drops no request sent through their Services.
// And the example app (examples/app) on real pods, installed and upgraded by Summon's real hook
// under Metacontroller's loop, its migrations against a real PostgreSQL, with clients counting
// every failed request; and with every component, its own Redis, beat counted once per slot in
// the database and a websocket through Daphne.
//
// SUMMON_REALPODS_STRIP_PRESTOP=1 removes the preStop delay from every Deployment before it is
// applied: run once that way, the proofs fail, which shows they can (docs/reliability.md has the
// counts).
package realpods

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/forklift-dev/summon/internal/testing/realnode"
)

func TestMain(m *testing.M) {
	os.Exit(realnode.Main(m, realnode.Options{Images: appImages()}))
}

// appImages are the example app's image archives (hack/app-images.sh, SUMMON_APP_IMAGES), one per
// version; none when they are not built (the app's proofs then skip, or fail under
// SUMMON_REQUIRE_INTEGRATION=1).
func appImages() []string {
	dir := os.Getenv("SUMMON_APP_IMAGES")
	if dir == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(dir, "summon-example-*.tar"))
	return files
}

// stripPreStop says whether to remove the preStop delays (to show that the proofs can fail).
func stripPreStop() bool { return os.Getenv("SUMMON_REALPODS_STRIP_PRESTOP") == "1" }
