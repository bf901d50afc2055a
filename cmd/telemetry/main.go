// Command telemetry is the usage-telemetry pipeline's single binary: ingest,
// consumers and tools are its subcommands.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "telemetry:", err)
		os.Exit(1)
	}
}
