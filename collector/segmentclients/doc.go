// Package segmentclients holds no code, only tests: Segment's own client
// libraries, unchanged and configured only by their documented settings
// (the API host, the write key), send to the whole pipeline (ingest, the
// local log, the consumer, the embedded ClickHouse engine), and the rows
// are checked field by field against what each client put on the wire.
//
// The clients: @segment/analytics-next in headless Chromium (its settings
// served by the collector, or given inline; standard and batching modes;
// a retry after a 503), segment-analytics-python (PyPI),
// github.com/segmentio/analytics-go/v3 and @segment/analytics-node. Their
// packages are installed by the tests into caches that are never committed
// (testdata/js/node_modules, gitignored; the Python virtualenv under
// ~/.cache/telemetry/py).
package segmentclients
