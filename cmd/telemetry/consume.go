package main

import "github.com/sora3web/telemetry/internal/config"

// consumeOnly narrows serve to the consumer: the bus (kafka.events_topic,
// or the local log) into ClickHouse, with /metrics and /healthz on
// serve.metrics_listen and the dashboards on dashboard.listen. It does not
// migrate (several consumers starting at once would race on DDL): run `telemetry migrate`
// first; without it, consume stops at start with pipeline.ErrSchemaBehind.
func consumeOnly(c *config.Config) {
	c.Serve.Ingest, c.Serve.Migrate = false, false
}
