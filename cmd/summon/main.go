// Command summon is the Summon hook server: Metacontroller calls it to sync and finalize
// SummonPlatforms. `summon --help` lists its flags.
package main

import (
	"os"

	"github.com/forklift-dev/summon/internal/server"
)

func main() { os.Exit(server.Main(os.Args[1:])) }
