package main

import "github.com/sora3web/telemetry/internal/config"

// consumeOnly narrows serve to the consumer: the bus (kafka.events_topic,
// or the local log) into ClickHouse, with /metrics, /healthz and
// /dashboard on serve.metrics_listen. Run `telemetry migrate` first, or
// set serve.migrate.
func consumeOnly(c *config.Config) {
	c.Serve.Ingest, c.Serve.Migrate = false, false
}
