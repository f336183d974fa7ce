// Command render writes the Redis of the real-Redis test's instance (redistest.Render) into a
// directory: each server's config file and the app config file, as a sync answers them.
// hack/redis.sh runs it and starts redis-server with those files.
package main

import (
	"fmt"
	"os"

	"github.com/forklift-dev/summon/internal/testing/redistest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: render DIR")
		os.Exit(2)
	}
	f, err := redistest.Render()
	if err == nil {
		err = f.Write(os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}
