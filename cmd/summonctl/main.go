// Command summonctl is the platform team's command line for Summon: render, lint and diff
// SummonPlatforms, follow their status, check a cluster's setup, and reach into an instance
// (shell, Django shell, logs, database shell, retry a migration, restart). Installed as
// kubectl-summon it is a kubectl plugin. `summonctl --help` lists the commands and exit codes.
package main

import (
	"os"

	"github.com/forklift-dev/summon/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args, cli.StandardStreams())) }
