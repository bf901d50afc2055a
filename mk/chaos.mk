# chaos.mk: the fault tests of internal/chaos (issue 4, items 4 and 5).
.PHONY: chaos

# chaos: build the binary, run `telemetry serve` as child processes and
# kill them, stop the (private, port 19092) Kafka broker, fill the local
# log, overload ingest; then prove by event_id that no acknowledged event
# was lost or stored twice. About 6 minutes on 2 cores. TELEMETRY_CHAOS=1
# enables the tests (a plain `go test ./...` skips them); -v prints each
# scenario's figures. The broker is fetched and started by the tests.
chaos: chdb
	TELEMETRY_CHAOS=1 $(GO) test -count=1 -v -timeout 20m ./internal/chaos/
