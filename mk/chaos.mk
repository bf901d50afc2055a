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

.PHONY: chaos-cluster

# chaos-cluster: the fault scenarios of issue 16 against a private
# three-node KRaft cluster (scripts/kafka.sh cluster mode on ports
# 28092-28094, controllers 28192-28194, below the kernel's ephemeral ports;
# CHAOS_CLUSTER_PORT moves them):
# one node down, leader loss, rolling restart, below min ISR, consumer
# group churn over three to four `telemetry consume` processes, ingest
# loss over two `telemetry ingest` processes. Each prints sent,
# acknowledged, stored, duplicated and lost and asserts lost = 0 and
# duplicated = 0; CHAOS_SEED replays a run (each scenario logs its seed).
# The tests start the cluster, and stop it at the end if they started it.
chaos-cluster: chdb kafka-fetch
	TELEMETRY_CHAOS=1 TELEMETRY_CHAOS_CLUSTER=1 $(GO) test -count=1 -v -timeout 20m -run '^TestCluster' ./internal/chaos/

.PHONY: bench-cluster

# bench-cluster: the scaling figures against the private cluster, printed
# and never asserted: consumer rows/s with 1, 2 and 3 `telemetry consume`
# processes (one engine: its CPU printed beside them), ingest events/s with
# 1 and 2 `telemetry ingest` processes, the lag recovery after a 60s
# consumer stop. About 3 minutes (2m42s on 2026-12-01).
bench-cluster: chdb kafka-fetch
	TELEMETRY_CHAOS=1 TELEMETRY_CHAOS_CLUSTER=1 CHAOS_CLUSTER_SCALING=1 $(GO) test -count=1 -v -timeout 30m -run '^TestClusterScaling$$' ./internal/chaos/
