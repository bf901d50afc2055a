// Command msgsize prints the average size in bytes of an enriched event as
// the collector publishes it, for sizing broker benchmarks.
package main

import (
	"fmt"

	"github.com/sora3web/telemetry/internal/gen"
)

func main() {
	fmt.Println(gen.EnrichedSize(2000))
}
