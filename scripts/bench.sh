#!/usr/bin/env bash
# bench.sh: measures ingest against the limit of the part below it, in one
# run, and writes docs/benchmarks.md. Figures, not assertions.
#   - our CPU per event (go test -bench, warm UA cache)
#   - the broker's own producer rate (kafka-producer-perf-test, same jars,
#     same message size, acks=all, lz4)
#   - /v1/events at full speed in batches of 50, then at half that rate
#   - /v1/beacon at full speed
# Environment: BENCH_SECONDS (default 20), BENCH_CONCURRENCY (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-20}
conc=${BENCH_CONCURRENCY:-16}
out=docs/benchmarks.md
work=$(mktemp -d)
trap 'kill ${pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

scripts/kafka.sh up >/dev/null
go build -o bin/telemetry ./cmd/telemetry

echo "== per-event CPU (go test -bench)" >&2
go test ./collector -run '^$' -bench 'DecodeValidateEnrich|HandlerBatch50' -benchtime 3s -benchmem | tee "$work/gobench.txt" >&2

echo "== message size" >&2
msg_size=$(go run ./internal/gen/cmd/msgsize)
echo "average enriched event: $msg_size bytes" >&2

topic="bench-$(date +%s)"
echo "== broker limit: kafka-producer-perf-test ($msg_size B, acks=all, lz4)" >&2
scripts/kafka.sh topics --create --topic "$topic-perf" --partitions 4 --replication-factor 1 >/dev/null
scripts/kafka.sh perf-test --topic "$topic-perf" --num-records 400000 --record-size "$msg_size" --throughput -1 \
  --producer-props bootstrap.servers=127.0.0.1:9092 acks=all compression.type=lz4 linger.ms=2 batch.size=262144 \
  | tee "$work/perf.txt" >&2
broker_rate=$(tail -1 "$work/perf.txt" | sed -E 's/.* ([0-9.]+) records\/sec.*/\1/')

echo "== collector" >&2
./bin/telemetry serve --set log.level=warn --set kafka.events_topic="$topic" --set kafka.dead_letter_topic="$topic-dlq" \
  --listen 127.0.0.1:18080 2>"$work/serve.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done

rss() { awk '/VmHWM/{print $2/1024}' /proc/$pid/status; }
run() { ./bin/telemetry loadgen --url http://127.0.0.1:18080 --json --duration "${secs}s" "$@" 2>/dev/null; }

echo "== /v1/events, batches of 50, full speed" >&2
run --mode batch --batch 50 --concurrency "$conc" >"$work/peak.json"
peak=$(python3 -c 'import json,sys;print(int(json.load(open(sys.argv[1]))["events_per_sec"]))' "$work/peak.json")
rss_peak=$(rss)
half=$((peak / 2))
echo "== /v1/events at half of peak ($half ev/s)" >&2
run --mode batch --batch 50 --concurrency "$conc" --rate "$half" >"$work/half.json"
echo "== /v1/beacon, one event per request, full speed" >&2
run --mode beacon --batch 1 --concurrency "$conc" >"$work/beacon.json"
rss_end=$(rss)

python3 - "$work" "$broker_rate" "$msg_size" "$rss_peak" "$rss_end" "$secs" "$conc" >"$out" <<'PY'
import json, sys, re, datetime, os, platform
work, broker, size, rss_peak, rss_end, secs, conc = sys.argv[1:]
broker = float(broker)
j = lambda n: json.load(open(os.path.join(work, n)))
peak, half, beacon = j("peak.json"), j("half.json"), j("beacon.json")
ms = lambda ns: f"{ns/1e6:.1f} ms"
gb = open(os.path.join(work, "gobench.txt")).read()
def bench(name):
    m = re.search(name + r"-\d+\s+\d+\s+([\d.]+) ns/op.*?(\d+) B/op\s+(\d+) allocs/op", gb)
    return (float(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
dve = bench("BenchmarkDecodeValidateEnrich")
hb = re.search(r"BenchmarkHandlerBatch50-\d+\s+\d+\s+[\d.]+ ns/op.*?([\d.]+) ns/event.*?(\d+) B/op\s+(\d+) allocs/op", gb)
print(f"""# Benchmarks

Written by `make bench` (scripts/bench.sh) on {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC,
{os.cpu_count()} cores, {platform.machine()}. The broker runs beside the collector
on the same machine; every figure below comes from this one run.

## Ingest against the broker's own limit

| measure | figure | limit of the part below (same run) | ratio |
|---|---|---|---|
| `/v1/events`, batches of 50, {conc} senders, {secs}s | **{peak['events_per_sec']:.0f} events/s** | broker's `kafka-producer-perf-test`: {broker:.0f} records/s ({size} B, acks=all, lz4) | **{peak['events_per_sec']/broker:.0%}** |
| p50 / p99 latency at full speed | {ms(peak['latency']['P50'])} / {ms(peak['latency']['P99'])} | | |
| p50 / p99 latency at half of peak ({half['target_rate']:.0f} ev/s offered, {half['events_per_sec']:.0f} accepted) | {ms(half['latency']['P50'])} / **{ms(half['latency']['P99'])}** | | |
| `/v1/beacon`, one event per request | **{beacon['requests_per_sec']:.0f} requests/s**, p99 {ms(beacon['latency']['P99'])} | | |
| collector peak RSS | {float(rss_peak):.0f} MiB after the batch run, {float(rss_end):.0f} MiB at the end | | |
| failed events (non-2xx or transport) | {peak['failed_events']} / {half['failed_events']} / {beacon['failed_events']} | | |

## Our own CPU per event

| benchmark | per event | allocations |
|---|---|---|
| decode + validate + enrich + encode, warm UA cache | {dve[0]/1000:.1f} µs | {dve[1]} B, {dve[2]} allocs |
| whole `/v1/events` handler, batch of 50 (no broker) | {float(hb.group(1))/1000 if hb else 0:.1f} µs | {int(hb.group(2))//50 if hb else 0} B, {int(hb.group(3))//50 if hb else 0} allocs |

Targets (issue 2): ≥ 50,000 events/s through `/v1/events` in batches of 50,
≥ 10,000 beacon requests/s, p99 < 20 ms at half that load, ≤ 10 µs of our own
CPU per event with a warm UA cache. On a 2-core machine the load generator,
the collector and the broker's JVM share the same two cores, so the ratio to
the broker's own producer (whose client also shares them) is the figure to
compare across machines.

Raw outputs: `go test -bench` and `kafka-producer-perf-test` lines:

```
{gb.strip()}
{open(os.path.join(work, "perf.txt")).read().strip().splitlines()[-1]}
```
""")
PY
echo "wrote $out" >&2
