// Command msgsize prints the average size in bytes of an enriched event as
// the collector publishes it, for sizing broker benchmarks.
package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sora3web/telemetry/internal/gen"
	"github.com/sora3web/telemetry/schema"
)

func main() {
	g := gen.New(1, 10000)
	total, n := 0, 2000
	for i := 0; i < n; i++ {
		ev := g.Event()
		out := schema.Enriched{Event: ev, ReceivedAt: time.Now(), Timestamp: time.Now(), Source: "web", IP: "203.0.113.0",
			Device: schema.Device{Class: "desktop", OS: "Windows", OSVersion: "10", Browser: "Chrome", BrowserVersion: "131.0"}}
		out.Context.UserAgent = ""
		b, _ := json.Marshal(out)
		total += len(b)
	}
	fmt.Println(total / n)
}
