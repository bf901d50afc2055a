// Package chaos holds the pipeline's fault tests: they build the real
// telemetry binary, run `telemetry serve` (and `telemetry ingest`) as child
// processes on temporary data directories, push generated events at them
// over HTTP while killing processes, stopping the Kafka broker, filling the
// local log or overloading ingest, and then prove by event_id that every
// event the collector acknowledged (answered 2xx) is stored in ClickHouse
// exactly once, and that nothing was stored that was never sent.
//
// The package has no non-test code: everything lives in _test.go files
// (harness_test.go starts and kills the processes, sender_test.go is the
// load generator and its bookkeeping, verify_test.go counts what arrived,
// scenarios_test.go holds the scenarios). The tests run only when
// TELEMETRY_CHAOS=1 (`make chaos` sets it): they take minutes, use both
// cores and run a private Kafka broker that they stop and start. See
// README.md for what each scenario proves and the figures of the last run.
package chaos
