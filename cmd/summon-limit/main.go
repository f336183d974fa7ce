// Command summon-limit is the baseline of the performance harness (hack/bench.sh), never a hook
// for a cluster: Summon's server with the logic of its sync hook taken out (server.NewLimit). It
// reads, checks, decodes, logs and counts every sync call as summon does, and answers each with
// the same fixed answer, encoded afresh. Summon's cost beyond it under the same load is the
// core's.
//
//	summon-limit --answer=testdata/sync/steady-ready/response.json --listen=127.0.0.1:0
//
// --answer must come first; every other flag is summon's.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/forklift-dev/summon/internal/server"
	"github.com/forklift-dev/summon/pkg/metacontroller"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 || !strings.HasPrefix(args[0], "--answer=") {
		fmt.Fprintln(os.Stderr, "usage: summon-limit --answer=FILE [summon's flags]: FILE is the sync answer (JSON) to give to every call")
		os.Exit(2)
	}
	path := strings.TrimPrefix(args[0], "--answer=")
	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "summon-limit:", err)
		os.Exit(2)
	}
	var answer metacontroller.SyncResponse
	if err := metacontroller.Decode(raw, &answer); err != nil || answer.Children == nil {
		fmt.Fprintf(os.Stderr, "summon-limit: %s is not a sync answer with a children list (%v)\n", path, err)
		os.Exit(2)
	}
	os.Exit(server.MainLimit(&answer, args[1:]))
}
