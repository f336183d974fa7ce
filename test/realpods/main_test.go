// Package realpods proves, on a real node (internal/testing/realnode: kubelet, containerd,
// kube-proxy), what kwok's pods can't show: that a rollout of Summon's serving children (web,
// Daphne, static, as pkg/children builds them) drops no request sent through their Services.
// The proofs with the example app, driven by the hook (migrations against PostgreSQL, beat, a
// websocket), are still to come (issue 18).
//
// SUMMON_REALPODS_STRIP_PRESTOP=1 removes the preStop delay from every Deployment before it is
// applied: run once that way, the proofs fail, which shows they can (docs/reliability.md has the
// counts).
package realpods

import (
	"os"
	"testing"

	"github.com/forklift-dev/summon/internal/testing/realnode"
)

func TestMain(m *testing.M) {
	os.Exit(realnode.Main(m, realnode.Options{}))
}

// stripPreStop says whether to remove the preStop delays (to show that the proofs can fail).
func stripPreStop() bool { return os.Getenv("SUMMON_REALPODS_STRIP_PRESTOP") == "1" }
