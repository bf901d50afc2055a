# chaos.mk: the fault tests of internal/chaos (issues 4 and 21).
.PHONY: chaos

# chaos: build the binary, run `telemetry serve` as child processes and
# kill them, stop the (private, port 19092) Kafka broker, fill the local
# log, overload ingest; then prove by event_id that no acknowledged event
# was lost or stored twice; then random histories of all of these with bus
# switches and deletions for CHAOS_HISTORY_BUDGET (5m), the failed ones
# first (internal/chaos/testdata/histories). About 12 minutes on 2 cores.
# CHAOS_SEED and CHAOS_HISTORY_SEED replay a run. TELEMETRY_CHAOS=1
# enables the tests (a plain `go test ./...` skips them); -v prints each
# scenario's figures. The broker is fetched and started by the tests.
chaos: chdb
	TELEMETRY_CHAOS=1 $(GO) test -count=1 -v -timeout 40m ./internal/chaos/
