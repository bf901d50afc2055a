#!/usr/bin/env bash
# bench.sh: measures every stage against the limit of the part below it, in
# one run, and writes docs/benchmarks.md. Figures, never assertions.
#   1. our CPU per event (go test -bench, warm UA cache)
#   2. the broker's own producer rate (kafka-producer-perf-test from the same
#      jars, same message size, acks=all, lz4)
#   3. ingest -> Kafka: /v1/events in batches of 50 at full speed, then at
#      half and at 70% of that rate (latency), /v1/beacon at full speed, a
#      unique user-agent flood, and overload (many more senders, small
#      max_inflight), with the collector's RSS
#   4. bus -> engine: the consumer draining a pre-filled Kafka topic, the
#      local log and (over HTTP) into the engine, beside the engine's own
#      in-process Native insert of the same rows (BenchmarkSink); 4b. the
#      engine's inserts at 50,000 rows a second with their merges
#      (BenchmarkInsertAndMerge), as migrated and with the default merge
#      selector
#   5. end-to-end freshness (2xx -> visible to a query) under 5,000 events/s
#   6. all-in-one, sustained: `telemetry serve` as its own process at
#      BENCH_SUSTAIN_RATE events/s for BENCH_SUSTAIN_SECONDS (backlog,
#      freshness, RSS, acknowledged against stored)
#   7. the same beside a dashboard query every second (BENCH_QUERY_RATE,
#      BENCH_QUERY_SECONDS, BENCH_QUERY_PREFILL, BENCH_QUERY_PANEL)
#   8. the completeness audit's cost: ingest -> Kafka at full speed, batches
#      and beacons, audit.enabled false and true in two processes with
#      alternating runs, and BenchmarkAuditCost (the consumer from the
#      local log, audit off and on alternating, and each half of the cost),
#      BenchmarkAuditCostSideBySide over drains of 2,000,000 rows and, in
#      scripts/bench_audit.sh, of 6,000,000
#   9. scale out on a private three-broker cluster (TestClusterScaling, as
#      make bench-cluster): ingest with 1 and 2 processes beside the
#      broker's own producer against the cluster, consumers with 1 to 3
#      processes, produce latency beside perf-test at the same rate, lag
#      recovery after a 60s consumer stop
# Rate limits are off in these runs: they measure capacity, not policy.
# Environment: BENCH_SECONDS (default 20), BENCH_CONCURRENCY (16), BENCH_ROWS (2000000);
# BENCH_AUDIT_ROUNDS (5), BENCH_AUDIT_SIDE_ROUNDS (36) and
# BENCH_AUDIT_CONTROL_ROUNDS (12) the rounds of the consumer's audit cost,
# sequential, side by side and its control; BENCH_AUDIT_LONG_* those over
# long drains (scripts/bench_audit.sh); AUDIT_INGEST_RUNS (15)
# the side-by-side runs of ingest with the audit off and on;
# BENCH_SUSTAIN_* and BENCH_QUERY_* are read by internal/soak (defaults there).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-20}
conc=${BENCH_CONCURRENCY:-16}
rows=${BENCH_ROWS:-2000000}
out=docs/benchmarks.md
work=$(mktemp -d)
# Delete this run's topics at exit: each run leaves a few GB otherwise, and a
# broker carrying thousands of old partitions is slower than a fresh one.
cleanup() {
	kill ${pid:-} 2>/dev/null || true
	[[ -n ${topic:-} ]] && scripts/kafka.sh topics --delete --topic "$topic.*" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

scripts/kafka.sh up >/dev/null
scripts/kafka.sh settle  # a previous run's topics are still being deleted
# CPU time the hypervisor gave to other guests ("steal") decides how fast
# this VM runs: the report states the share stolen during the run.
head -1 /proc/stat >"$work/stat.start" 2>/dev/null || true
scripts/chdb.sh fetch >/dev/null
go build -o bin/telemetry ./cmd/telemetry
# What a file costs here: every part the engine writes is a directory of
# files, on the filesystem of $work (where the runs below keep their data).
python3 scripts/filecreate.py "$work" /dev/shm >"$work/filecreate.json"

echo "== 1. per-event CPU (go test -bench)" >&2
go test ./collector -run '^$' -bench 'DecodeValidateEnrich|HandlerBatch50|HandlerBatch50Audit|HandlerBeacon' -benchtime 3s -benchmem | tee "$work/gobench.txt" >&2

msg_size=$(go run ./internal/gen/cmd/msgsize)
topic="bench-$(date +%s)"
echo "== 2. broker limit: kafka-producer-perf-test ($msg_size B, acks=all, lz4)" >&2
scripts/kafka.sh topics --create --topic "$topic-perf" --partitions 4 --replication-factor 1 >/dev/null
scripts/kafka.sh perf-test --topic "$topic-perf" --num-records 600000 --record-size "$msg_size" --throughput -1 \
  --producer-props bootstrap.servers=127.0.0.1:9092 acks=all compression.type=lz4 linger.ms=2 batch.size=262144 \
  | tee "$work/perf.txt" >&2
broker_rate=$(tail -1 "$work/perf.txt" | sed -E 's/^[0-9]+ records sent, ([0-9.]+) records\/sec.*/\1/')

echo "== 3. ingest -> Kafka" >&2
./bin/telemetry ingest --set log.level=warn --set bus=kafka --set kafka.events_topic="$topic" --set kafka.dead_letter_topic="$topic-dlq" \
  --set data_dir="$work/data" --set ingest.max_inflight=1024 --set ingest.rate_limit_per_key.rate=0 --listen 127.0.0.1:18080 2>"$work/serve.log" &
pid=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
rss() { awk '/VmHWM/{print int($2/1024)}' /proc/$pid/status; }
run() { ./bin/telemetry loadgen --url http://127.0.0.1:18080 --json --duration "${secs}s" "$@" 2>/dev/null; }
rate_of() { python3 -c 'import json,sys;print(int(json.load(open(sys.argv[1]))["events_per_sec"]))' "$1"; }

metrics() { curl -sf http://127.0.0.1:18080/metrics >"$work/$1.metrics"; }
# Warm-up, not reported: the broker's JIT and our caches settle in the first
# seconds (the broker spends most of a core compiling after a start).
./bin/telemetry loadgen --url http://127.0.0.1:18080 --json --duration 10s --mode batch --batch 50 --concurrency "$conc" >/dev/null 2>&1
metrics start
# Full speed three times too, the median run reported: a broker round trip
# or a disk stall that lands in one run moved its figure by a quarter here.
for i in 1 2 3; do run --mode batch --batch 50 --concurrency "$conc" >"$work/peak-$i.json"; done
peak=$(for i in 1 2 3; do rate_of "$work/peak-$i.json"; done | sort -n | sed -n 2p)
rss_peak=$(rss); metrics peak
# Open-loop latency runs three times each: one run's p99 swings by 2x here
# (a few slow broker round trips decide it); the report takes the median.
# The open-loop runs get 4x the senders: arrivals are due on a schedule
# whatever the answers, like a fleet of independent clients, and with 16
# senders a 20ms hiccup left all of them busy and due requests queued in the
# load generator itself (the report shows that wait apart).
osenders=$((conc * 4))
for i in 1 2 3; do run --mode batch --batch 50 --concurrency "$osenders" --rate $((peak / 2)) >"$work/half-$i.json"; done
metrics half
p70=$((peak * 7 / 10))
for i in 1 2 3; do run --mode batch --batch 50 --concurrency "$osenders" --rate "$p70" >"$work/p70-$i.json"; done
metrics p70
echo "== 3a. the broker's own producer at 70% of our peak ($p70 records/s): its latency" >&2
scripts/kafka.sh perf-test --topic "$topic-perf" --num-records $((p70 * secs)) --record-size "$msg_size" --throughput "$p70" \
  --producer-props bootstrap.servers=127.0.0.1:9092 acks=all compression.type=lz4 linger.ms=0 batch.size=262144 \
  | tee "$work/perf70.txt" >&2
run --mode beacon --batch 1 --concurrency $((conc * 4)) >"$work/beacon.json"  # many browsers, one event each
run --mode batch --batch 50 --concurrency "$conc" --unique-ua --seed 77 >"$work/uaflood.json"
rss_flood=$(rss)
kill $pid; wait $pid 2>/dev/null || true

echo "== 8a. ingest -> Kafka, the audit off (audit.enabled=false) and on, side by side" >&2
# Two fresh processes, one per setting, loaded at the same time, each by a
# load generator of its own: a broker or disk hiccup, the broker's log
# growing, and the machine's speed, which drifts by more than the cost
# within minutes, land on both alike. (Run one after the other, the two
# settings' runs spread by up to 20%, and make bench said +19% for beacons
# where a direct A/B an hour later showed no cost.)
start_ingest() { # port data audit
	./bin/telemetry ingest --set log.level=warn --set bus=kafka --set kafka.events_topic="$topic" --set kafka.dead_letter_topic="$topic-dlq" \
	  --set data_dir="$work/$2" --set ingest.max_inflight=1024 --set ingest.rate_limit_per_key.rate=0 --set audit.enabled="$3" \
	  --listen 127.0.0.1:"$1" >/dev/null 2>>"$work/serve.log" &
	echo $! # stdout is not the process's: $(...) would wait for it to exit
}
on_pid=$(start_ingest 18081 data-audit true)
off_pid=$(start_ingest 18082 data-noaudit false)
pid="$on_pid $off_pid"
for port in 18081 18082; do
	for _ in $(seq 150); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.2; done
	./bin/telemetry loadgen --url http://127.0.0.1:$port --json --duration 10s --mode batch --batch 50 --concurrency "$conc" >/dev/null 2>&1
done
ab() { ./bin/telemetry loadgen --url "http://127.0.0.1:$1" --json --duration "${secs}s" "${@:2}" 2>/dev/null; }
# AUDIT_INGEST_RUNS runs (default 15; bench_report.py counts them): the cost
# is a few percent, and one run's swings as large (five runs spread from
# -0.1% to +4.8% on 2026-12-04; nine said a median of +1.7% for beacons in
# one make bench and +3.1% in the next, on 2026-12-05).
for i in $(seq "${AUDIT_INGEST_RUNS:-15}"); do
	for load in "batch 50 $conc" "beacon 1 $((conc * 4))"; do
		read -r mode batch senders <<<"$load"
		suffix=
		[ "$mode" = beacon ] && suffix=-beacon
		ab 18081 --mode "$mode" --batch "$batch" --concurrency "$senders" >"$work/audit$suffix-$i.json" &
		a=$!
		ab 18082 --mode "$mode" --batch "$batch" --concurrency "$senders" >"$work/noaudit$suffix-$i.json" &
		wait $a $!
	done
done
kill $on_pid $off_pid; wait $on_pid $off_pid 2>/dev/null || true
pid=

over_inflight=32
echo "== 3b. overload: 8x the senders, max_inflight $over_inflight" >&2
./bin/telemetry ingest --set log.level=warn --set bus=kafka --set kafka.events_topic="$topic" --set kafka.dead_letter_topic="$topic-dlq" \
  --set data_dir="$work/data2" --set ingest.max_inflight=$over_inflight --set ingest.rate_limit_per_key.rate=0 --listen 127.0.0.1:18080 2>>"$work/serve.log" &
pid=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
run --mode batch --batch 50 --concurrency $((conc * 8)) >"$work/overload.json"
rss_over=$(rss)
kill $pid; wait $pid 2>/dev/null || true
pid=

echo "== 3c. all-in-one ingest (bus: local log, fsync always)" >&2
./bin/telemetry ingest --set log.level=warn --set bus=log --set data_dir="$work/data3" --set ingest.rate_limit_per_key.rate=0 --listen 127.0.0.1:18080 2>>"$work/serve.log" &
pid=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
run --mode batch --batch 50 --concurrency "$conc" >"$work/logbus.json"
kill $pid; wait $pid 2>/dev/null || true
pid=

echo "== 4. bus -> engine ($rows rows)" >&2
# The sections above wrote some GB to the broker: let the page cache's
# writeback end before the consumer is measured (its figure in make bench
# ran 10-15% under standalone runs of the same code on 2026-12-01).
sync
scripts/kafka.sh settle
BENCH_ROWS=$rows go test ./sinks/consumer -run '^$' -bench '^BenchmarkSink$' -benchtime 1x -timeout 40m | tee "$work/sink.txt" >&2

echo "== 4b. the engine's inserts with their merges (BenchmarkInsertAndMerge)" >&2
# A second of `telemetry serve` at 50,000 events/s, 80 times over, with the
# merges it sets off: the events table as migrated beside the engine's
# default merge selector (base 5).
BENCH_ROWS=4000000 BENCH_VARIANTS=base5,as_migrated go test ./sinks/consumer -run '^$' -bench '^BenchmarkInsertAndMerge$' -benchtime 1x -timeout 30m 2>&1 | tee "$work/merge.txt" >&2

echo "== 8b. the audit's cost in the consumer (BenchmarkAuditCost)" >&2
# Five alternating rounds (two took 25 s, five about a minute): with two, one
# disturbed round moved the best-of figure by several percent. Run one after
# the other, a round still moved by up to 20% either way (the machine's speed
# drifts within minutes): the ways' CPU per row and their spread are shown,
# and the cost is taken side by side (BenchmarkAuditCostSideBySide: off and on
# draining at the same time, each in a process of its own with its engine).
BENCH_AUDIT_ROUNDS=${BENCH_AUDIT_ROUNDS:-5} go test ./sinks/consumer -run '^$' -bench '^BenchmarkAuditCost$' -benchtime 1x -timeout 30m | tee "$work/auditcost.txt" >&2
# Thirty-six rounds of two phases of 2,000,000 rows (some 80 s a round,
# after a minute writing the logs all rounds read; a million rows until
# 2026-12-04, whose drains held one insert of the kept audit rows or none
# where a steady flow has one every 5 s): in each phase one process drains
# with the audit off and the other with it on, and each process runs both
# ways, so that its own speed (two identical consumers differed by up to
# 19%, 2026-12-03) cancels out of its ratio; the benchmark reports the
# median with its 95% interval. Single rounds still range over some 15
# points on this machine, so the interval narrows with rounds: fifteen
# until 2026-12-05 (then ~95 s each, the children writing their logs
# every round) left one 11 points wide. Each drain runs on until the merges
# it left have settled (some 5 s; the headline since 2026-12-06).
BENCH_AUDIT_ROUNDS=${BENCH_AUDIT_SIDE_ROUNDS:-36} go test ./sinks/consumer -run '^$' -bench '^BenchmarkAuditCostSideBySide$' -benchtime 1x -timeout 90m 2>&1 | tee "$work/auditside.txt" >&2
# The method's control, twelve rounds of the same: audit off against audit
# off reading the log with ingest's records (what reading them costs, near
# nothing): a figure well below zero would say the method favours one log
# (on 2026-12-05 its mid-drain window said -2.0%, as low as the audit's own
# figure, where the whole drains said +1.0%: the headline is now the CPU per
# row over the whole drains, until their merges settled).
BENCH_AUDIT_ROUNDS=${BENCH_AUDIT_CONTROL_ROUNDS:-12} BENCH_AUDIT_PAIR=audit_off,off_on_log go test ./sinks/consumer -run '^$' -bench '^BenchmarkAuditCostSideBySide$' -benchtime 1x -timeout 40m 2>&1 | tee "$work/auditcontrol.txt" >&2
# The same over drains of 6,000,000 rows, nearer what a consumer sustains
# (scripts/bench_audit.sh, which make bench-audit runs on its own): six
# rounds and two of the control, some 50 minutes.
scripts/bench_audit.sh "$work"

echo "== 5. freshness" >&2
go test ./internal/pipeline -run '^$' -bench Freshness -benchtime 1x -timeout 10m | tee "$work/fresh.txt" >&2

# 6 and 7 fail when an acknowledged event was lost or stored twice, or the
# load generator failed: the report is written all the same, then this
# script fails.
failed=0
soak() { BENCH_BINARY=$PWD/bin/telemetry go test ./internal/soak -run '^$' -bench "^$1\$" -benchtime 1x -timeout 90m | tee "$work/$2" >&2 || failed=1; }
echo "== 6. all-in-one, sustained" >&2
soak BenchmarkSustained sustain.txt
echo "== 7. all-in-one, dashboard queries beside the load" >&2
soak BenchmarkQueriesBesideInserts queries.txt

echo "== 9. scale out: a three-broker cluster (make bench-cluster)" >&2
# Figures only; a failure here leaves the section "not measured" and fails
# the script after the report is written.
TELEMETRY_CHAOS=1 TELEMETRY_CHAOS_CLUSTER=1 CHAOS_CLUSTER_SCALING=1 go test -count=1 -v -timeout 30m \
  -run '^TestClusterScaling$' ./internal/chaos/ | tee "$work/cluster.txt" >&2 || failed=1

head -1 /proc/stat >"$work/stat.end" 2>/dev/null || true
# The settings the report names, read from this run's config, not written as text.
ua_budget=$(./bin/telemetry config | awk '$1 == "ua_parse_budget:" {print $2}')
batch_interval=$(./bin/telemetry config | awk '$1 == "batch_interval:" {print $2}')
max_query_time=$(./bin/telemetry config | awk '$1 == "max_query_time:" {print $2}')
go_procs=$(./bin/telemetry config | awk '$1 == "go_procs_per_cpu:" {print $2}')
printf '{"ua_parse_budget": %s, "overload_max_inflight": %s, "batch_interval": "%s", "max_query_time": "%s", "go_procs_per_cpu": %s}\n' \
  "$ua_budget" "$over_inflight" "$batch_interval" "$max_query_time" "$go_procs" >"$work/settings.json"
python3 scripts/bench_report.py "$work" "$broker_rate" "$msg_size" "$rss_peak" "$rss_flood" "$rss_over" "$secs" "$conc" "$rows" >"$out"
echo "wrote $out" >&2
exit $failed
