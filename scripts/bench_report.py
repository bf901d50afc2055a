"""Writes docs/benchmarks.md from the outputs of scripts/bench.sh."""
import datetime
import glob
import json
import os
import platform
import re
import sys

# "--audit WORK COMMIT" (scripts/bench_audit.sh on its own) writes the
# consumer's audit cost over long drains alone, from WORK; otherwise the
# whole report from bench.sh's WORK and figures.
AUDIT_ONLY = sys.argv[1] == "--audit"
if AUDIT_ONLY:
    work, commit = sys.argv[2:]
else:
    work, broker, size, rss_peak, rss_flood, rss_over, secs, conc, rows = sys.argv[1:]
    broker = float(broker)


def j(name):
    return json.load(open(os.path.join(work, name)))


def text(name):
    return open(os.path.join(work, name)).read()


def ms(ns):
    return f"{ns / 1e6:.1f} ms"


def metric(txt, unit):
    m = re.search(r"([\d.e+]+) " + re.escape(unit), txt)
    return float(m.group(1)) if m else float("nan")


def bench_line(name, bench):
    """The metrics of a Go benchmark's result line in file name, by unit
    ({} when the file or the line is missing, so an absent figure reads
    "not measured" instead of failing the report)."""
    try:
        txt = text(name)
    except OSError:
        return {}
    m = re.search(r"^Benchmark" + bench + r"(?:-\d+)?\s+\d+\s+(.*)$", txt, re.M)
    if not m:
        return {}
    f = m.group(1).split()
    return {unit: float(v) for v, unit in zip(f[0::2], f[1::2])}


def fig(d, unit, fmt="{:,.0f}", suffix=""):
    """A figure of a benchmark line, or "not measured"."""
    return fmt.format(d[unit]) + suffix if unit in d else "not measured"


def raw_lines(name, word):
    """The lines of file name that hold word ("" when it is missing)."""
    try:
        return "\n".join(l for l in text(name).splitlines() if word in l)
    except OSError:
        return ""


def failed(name):
    """Whether the Go benchmark in file name failed (or did not run)."""
    try:
        txt = text(name)
    except OSError:
        return True
    return "--- FAIL" in txt or "\nFAIL" in txt or "\nok " not in "\n" + txt


def side_row(name, what, way):
    """A row of BenchmarkAuditCostSideBySide's result in file name: audit_off
    against way, each round's CPU per row until the drains' merges settled
    (the headline), to their last rows, their rate, and their rate and CPU
    mid-drain."""
    m = bench_line(name, "AuditCostSideBySide")
    if not m:
        return f"| consumer from the local log, {what} | not measured | not measured | |"
    rounds = raw_lines(name, "BenchmarkAuditCostSideBySide round")
    listed = lambda pattern: ", ".join(f"{c:+.1f}%" for c in sorted(float(c) for c in re.findall(pattern, rounds)))
    pct = lambda k: fig(m, k, '{:+.1f}', '%')
    rate_interval = (f", interval {pct('audit_drain_rate_cost_lo_%')} to {pct('audit_drain_rate_cost_hi_%')}"
                     if "audit_drain_rate_cost_hi_%" in m else "")
    return (f"| consumer from the local log, {what}, median of {fig(m, 'rounds')} rounds "
            f"| {fig(m, 'audit_off_cpu_us/row', '{:.2f}', ' µs')}/row settled, {fig(m, 'audit_off_last_row_cpu_us/row', '{:.2f}', ' µs')}/row "
            f"to the last row, {fig(m, 'audit_off_rows/s')} rows/s "
            f"| {fig(m, f'{way}_cpu_us/row', '{:.2f}', ' µs')}/row settled, {fig(m, f'{way}_last_row_cpu_us/row', '{:.2f}', ' µs')}/row "
            f"to the last row, {fig(m, f'{way}_rows/s')} rows/s "
            f"| CPU per row until the merges settled **{m['audit_cost_%']:+.1f}%**, 95% interval of the median {pct('audit_cost_lo_%')} to {pct('audit_cost_hi_%')} "
            f"(rounds: {listed(r'settled cost ([-+][0-9.]+)%')}); to the last row {pct('audit_last_row_cost_%')}, "
            f"interval {pct('audit_last_row_cost_lo_%')} to {pct('audit_last_row_cost_hi_%')} "
            f"(rounds: {listed(r'last-row cost ([-+][0-9.]+)%')}); rate to the last row {pct('audit_drain_rate_cost_%')}{rate_interval} "
            f"(rounds: {listed(r'last-row cost [-+][0-9.]+%, rate ([-+][0-9.]+)%')}); mid-drain rate {pct('audit_mid_cost_%')}, "
            f"CPU {pct('audit_mid_cpu_cost_%')} (mid-drain rate rounds: {listed(r'CPU µs/row: rate ([-+][0-9.]+)%')}) |")


def undone(m, way):
    """The CPU per row a way's drains left to their merges after the last
    row: the median settled figure less the median to the last row."""
    settled, last = m.get(f"{way}_cpu_us/row"), m.get(f"{way}_last_row_cpu_us/row")
    return f"{settled - last:.2f} CPU µs/row" if settled is not None and last is not None else "not measured"


def steal_share():
    """The share of CPU time the hypervisor gave to other guests during the run."""
    try:
        a, b = ([int(x) for x in text(f).split()[1:]] for f in ("stat.start", "stat.end"))
    except (OSError, ValueError):
        return "unknown"
    d = [y - x for x, y in zip(a, b)]
    return f"{d[7] / max(sum(d[:8]), 1):.0%}" if len(d) > 7 else "unknown"


# The side by side over long drains (scripts/bench_audit.sh).
auditlong = bench_line("auditlong.txt", "AuditCostSideBySide")


def long_rows():
    """The side-by-side rows over long drains (scripts/bench_audit.sh)."""
    drained = fig(auditlong, "rows_per_drain")
    return "\n".join((side_row("auditlong.txt", f"off and on draining side by side, as above, over drains of {drained} rows (scripts/bench_audit.sh)", "audit_on"),
                      side_row("auditlongcontrol.txt", f"the same over drains of {drained} rows, its control (off beside off reading the log with ingest's audit records)", "off_on_log")))


def thread_split(name, way):
    """The median CPU per row (µs) of each thread name over way's drains in
    file name (the children's "CPU µs/row by thread name" lines), largest
    first, as text."""
    per = {}
    for line in raw_lines(name, f"audit-child {way}: CPU µs/row by thread name:").splitlines():
        f = line.split("thread name:")[1].split()
        for t, v in zip(f[0::2], f[1::2]):
            per.setdefault(t, []).append(float(v))
    med = {t: sorted(v)[len(v) // 2] for t, v in per.items()}
    return ", ".join(f"{t} {v:.2f}" for t, v in sorted(med.items(), key=lambda kv: -kv[1]) if v >= 0.1) or "not measured"


def long_control():
    """What the long drains' control (off beside off reading the log with
    ingest's records: the same work) came out at in this run, as a
    sentence ("" when it was not measured)."""
    m = bench_line("auditlongcontrol.txt", "AuditCostSideBySide")
    if "audit_cost_%" not in m or "audit_drain_rate_cost_%" not in m:
        return ""
    return (f"In this run the long drains' control, whose two ways do the same work, came out at {m['audit_cost_%']:+.1f}% in CPU per "
            f"row until the merges settled and {m['audit_drain_rate_cost_%']:+.1f}% in throughput ({m['rounds']:.0f} rounds).")


def long_target():
    """Whether the audit costs the consumer at most 3% of its throughput
    over long drains (issue 17's measure): the rate to the last row, its
    median and its 95% interval's upper bound; the CPU per row until the
    merges settled is stated beside it. None when not measured."""
    m = auditlong
    keys = ("audit_drain_rate_cost_%", "audit_drain_rate_cost_hi_%", "audit_cost_%", "audit_cost_hi_%")
    if any(k not in m for k in keys):
        return None
    rate, rate_hi, cpu, cpu_hi = (m[k] for k in keys)
    return rate <= 3 and rate_hi <= 3, (f"consumer's throughput over drains of {m['rows_per_drain']:,.0f} rows {rate:+.1f}% (up to {rate_hi:+.1f}%; "
                                        f"its CPU per row until the merges settled {cpu:+.1f}%, up to {cpu_hi:+.1f}%)")


if AUDIT_ONLY:
    target = long_target()
    print(f"""# The completeness audit's cost to the consumer, over long drains

Written by `make bench-audit` ([scripts/bench_audit.sh](../scripts/bench_audit.sh)) on
{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC from {commit}, {os.cpu_count()} cores ({platform.machine()}), of
which the hypervisor gave **{steal_share()}** to other guests during the run. Every figure below is this
run's. `make bench` runs the same (its report, [benchmarks.md](benchmarks.md), shows these rows
beside the drains of 2,000,000 rows).

BenchmarkAuditCostSideBySide as described in [benchmarks.md](benchmarks.md#completeness-audit-cost):
two processes, each with its own engine and half of the CPUs, drain the same logs at the same time,
one with the audit off and the other with it on, then the other way round; a round's cost is the
geometric mean of each process's own on/off ratio; the figure is the median of the rounds with the
sign test's 95% interval of that median. Here each drain is long, as a consumer's throughput is
what it sustains: over 2,000,000 rows a drain is mostly its start and its end, and its end leaves
merges undone, more of them the faster the drain. The throughput is the rate from the consumer's
start to the last row stored (with the audit on, its kept counts inserted too). The CPU per row until
the merges the drain left have settled, the headline of the 2,000,000-row drains, is shown beside it,
not used for the target here: after a long drain it rests on which merges the engine runs after the
end, large ones among them (a merge a steady flow spreads over many more rows), which moves single
rounds by points (each round's figures to the last row and to the settle are in the raw lines).
{long_control()}

| measure | audit off | audit on | cost |
|---|---|---|---|
{long_rows()}

Where each way's CPU went, by thread (µs per row, the median of its drains; the process's own
threads, named for its binary, run the consumer and the engine's inserts, which the engine runs in
the thread that calls it; MergeMutate are the engine's merges, ThreadPool its parallel work):
audit off {thread_split("auditlong.txt", "audit_off")}; audit on {thread_split("auditlong.txt", "audit_on")}.
A row costs more CPU here than over the 2,000,000-row drains of benchmarks.md: compare the two only
as shares. The longer drain's table is three times as large when it ends, and its merges
(MergeMutate) are a large part of each row's cost, with the audit off and on alike.

| target | met |
|---|---|
| the completeness audit costs at most 3% of the consumer's throughput (issue 17: the median, and its 95% interval's upper bound) | {"not measured" if target is None else ("yes" if target[0] else "no") + " (" + target[1] + ")"} |

```
{raw_lines("auditlong.txt", "BenchmarkAuditCostSideBySide")}
{raw_lines("auditlongcontrol.txt", "BenchmarkAuditCostSideBySide")}
```
""")
    sys.exit(0)


beacon, flood, over, logbus = (j(n) for n in (
    "beacon.json", "uaflood.json", "overload.json", "logbus.json"))


def split(r):
    """Where an open-loop p99 went: the round trip, and the wait for a free sender."""
    return f"round trip p99 {ms(r['round_trip']['P99'])}, waiting for a free sender p99 {ms(r['sender_wait']['P99'])}"


def median_run(prefix, key=lambda r: r["latency"]["P99"], show=lambda v: ms(v), n=3):
    """The run of n (three unless told) with the median key (p99 unless told), and every run's key."""
    runs = sorted((j(f"{prefix}-{i}.json") for i in range(1, n + 1)), key=key)
    return runs[n // 2], ", ".join(show(key(r)) for r in runs)


peak, peak_runs = median_run("peak", key=lambda r: r["events_per_sec"], show=lambda v: f"{v:,.0f}")
half, half_p99s = median_run("half")
p70, p70_p99s = median_run("p70")
gb = text("gobench.txt")
dve = re.search(r"BenchmarkDecodeValidateEnrich-\d+\s+\d+\s+([\d.]+) ns/op.*?(\d+) B/op\s+(\d+) allocs/op", gb)


def handler_bench(name):
    """ns/event, B/op and allocs/op of a whole-handler benchmark."""
    return re.search(r"Benchmark" + name + r"-\d+\s+\d+\s+[\d.]+ ns/op.*?([\d.]+) ns/event.*?(\d+) B/op\s+(\d+) allocs/op", gb)


hb, hbeacon = handler_bench("HandlerBatch50"), handler_bench("HandlerBeacon")
hba = handler_bench("HandlerBatch50Audit")
auditcost = bench_line("auditcost.txt", "AuditCost")
auditside = bench_line("auditside.txt", "AuditCostSideBySide")
AUDIT_WAYS = (("audit_off", "audit off: no counting"),
              ("audit_on", "audit on (the default)"),
              ("off_on_log", "audit off, reading the log that holds ingest's audit records (only committed)"))


# The side-by-side runs of ingest with the audit off and on (bench.sh 8a):
# as many as it made (its AUDIT_INGEST_RUNS).
AUDIT_INGEST_RUNS = sum(1 for _ in glob.glob(os.path.join(work, "noaudit-[0-9]*.json"))) or 15


def audit_rows():
    """Ingest with the audit off beside on (two processes loaded at the
    same time), then the consumer's: side by side, and BenchmarkAuditCost's
    ways one after the other."""
    out = []
    rate = lambda r: r["events_per_sec"]
    count = lambda v: f"{v:,.0f}"
    for what, on_prefix, off_prefix in (
            (f"ingest -> Kafka, batches of 50, {conc} senders each, side by side, median of {AUDIT_INGEST_RUNS}", "audit", "noaudit"),
            (f"ingest -> Kafka, beacons (one event per request), {int(conc) * 4} senders each, side by side, median of {AUDIT_INGEST_RUNS}", "audit-beacon", "noaudit-beacon")):
        try:
            on, on_runs = median_run(on_prefix, key=rate, show=count, n=AUDIT_INGEST_RUNS)
            off, off_runs = median_run(off_prefix, key=rate, show=count, n=AUDIT_INGEST_RUNS)
            # Run i of each setting ran at the same time: the cost is the
            # median of the runs' own.
            out.append(f"| {what} | off **{rate(off):,.0f}** events/s (runs: {off_runs}) "
                       f"| on **{rate(on):,.0f}** (runs: {on_runs}) | {paired_cost(ingest_rates(off_prefix), ingest_rates(on_prefix))} |")
        except OSError:
            out.append(f"| {what} | not measured | not measured | |")
    if hb and hba:
        a, b = float(hb.group(1)), float(hba.group(1))
        out.append(f"| whole `/v1/events` handler, batch of 50, no broker (CPU per event) | {a / 1000:.2f} µs | {b / 1000:.2f} µs | {(b - a) / a:+.1%} |")
    out.append(side_row("auditside.txt", "off and on draining side by side (two processes, each with its engine and its half of the CPUs, each running off and on in turn, the other in the other order)", "audit_on"))
    out.append(side_row("auditcontrol.txt", "the same method's control: off beside off reading the log with ingest's audit records (what reading them costs; a method that favoured either log would show here)", "off_on_log"))
    out.append(long_rows())
    runs = audit_runs()
    for way, what in AUDIT_WAYS[1:]:
        cost = paired_cost(runs.get("audit_off", []), runs.get(way, []))
        out.append(f"| consumer from the local log, {what}, median of {len(runs.get(way, []))} | off {fig(auditcost, 'audit_off_rows/s')} rows/s, "
                   f"{fig(auditcost, 'audit_off_cpu_us/row', '{:.2f}', ' µs')}/row (runs: {spread(runs, 'audit_off')}) | {fig(auditcost, f'{way}_rows/s')} rows/s, "
                   f"{fig(auditcost, f'{way}_cpu_us/row', '{:.2f}', ' µs')}/row (runs: {spread(runs, way)}) | {cost} |")
    return "\n".join(out)


def audit_target():
    """Whether the audit's cost, side by side with it off, is at most 3%
    in ingest's two loads and in the consumer (settled): yes when each
    median and its 95% interval's upper bound are."""
    out, met = [], True
    for what, on_prefix, off_prefix in (("batches", "audit", "noaudit"), ("beacons", "audit-beacon", "noaudit-beacon")):
        try:
            costs = [100 * c for c in paired_costs(ingest_rates(off_prefix), ingest_rates(on_prefix))]
        except OSError:
            return "not measured"
        med, (_, hi) = costs[len(costs) // 2], median_interval(costs)
        met = met and med <= 3 and hi <= 3
        out.append(f"ingest {what} {med:+.1f}% (up to {hi:+.1f}%)")
    if "audit_cost_%" not in auditside:
        return "not measured"
    med, hi = auditside["audit_cost_%"], auditside.get("audit_cost_hi_%", float("nan"))
    met = met and med <= 3 and hi <= 3
    out.append(f"consumer {med:+.1f}% (up to {hi:+.1f}%)")
    long = long_target()
    if long is not None:
        met = met and long[0]
        out.append(long[1])
    return ("yes" if met else "no") + " (" + "; ".join(out) + ")"


def ingest_rates(prefix):
    """The events/s of each of ingest's side-by-side runs (bench.sh 8a)
    whose files start with prefix, in run order."""
    return [j(f"{prefix}-{i}.json")["events_per_sec"] for i in range(1, AUDIT_INGEST_RUNS + 1)]


def audit_runs():
    """Each way's rates, run by run, from BenchmarkAuditCost's round lines."""
    runs = {}
    for line in raw_lines("auditcost.txt", "BenchmarkAuditCost round:").splitlines():
        m = re.search(r"round: (\w+)\s+([\d.]+) rows/s", line)
        if m:
            runs.setdefault(m.group(1), []).append(float(m.group(2)))
    return runs


def paired_cost(off, on):
    """The median over rounds of each round's cost: a round runs the ways
    back to back (or at once), so both halves of a pair see nearly the same
    machine, whose speed drifts by more than the cost within minutes."""
    if not off or len(off) != len(on):
        return "not measured"
    costs = paired_costs(off, on)
    lo, hi = median_interval(costs)
    return (f"**{costs[len(costs) // 2]:+.1%}**, 95% interval of the median {lo:+.1%} to {hi:+.1%} "
            f"(rounds: {', '.join(f'{c:+.1%}' for c in costs)})")


def paired_costs(off, on):
    """Each round's throughput lost (a fraction), sorted: off's rate less
    on's over off's, rounds paired by position."""
    return sorted((a - b) / a for a, b in zip(off, on))


def median_interval(xs):
    """A confidence interval of at least 95% for the median of the
    population xs were drawn from, whatever its shape (the sign test), as
    medianInterval in sinks/consumer: the sorted xs' k-th from either end,
    k the most values each tail may hold below it with a chance of at most
    2.5%. With fewer than 6 values it is the smallest to the largest."""
    s = sorted(xs)
    n = len(s)
    k, p, tail = 0, 0.5 ** n, 0.0  # p: P(X = i), tail: P(X <= i)
    for i in range(n):
        tail += p
        if tail > 0.025:
            break
        k = i
        p = p * (n - i) / (i + 1)
    return s[k], s[n - 1 - k]


def spread(runs, way):
    """The lowest and highest rate of a way's runs."""
    r = runs.get(way)
    return f"{min(r):,.0f} to {max(r):,.0f}" if r else "none"
sink = bench_line("sink.txt", "Sink")
PATHS = (("limit", "engine's own in-process Native insert (the limit)"),
         ("kafka", "consumer draining a pre-filled Kafka topic, in-process engine"),
         ("log", "consumer draining the local log, in-process engine"),
         ("http", "consumer into the engine over HTTP (clickhouse-go)"))


def sink_rows():
    """One table row per path of BenchmarkSink: rows/s, CPU and allocations
    per row, and the ratio of its rate to the limit's."""
    out = []
    limit = sink.get("limit_rows/s")
    for path, what in PATHS:
        rate = sink.get(f"{path}_rows/s")
        ratio = f"{rate / limit:.0%}" if rate is not None and limit else "not measured"
        out.append(f"| {path}: {what} | {fig(sink, f'{path}_rows/s')} | {fig(sink, f'{path}_cpu_us/row', '{:.2f}', ' µs')} "
                   f"| {fig(sink, f'{path}_allocs/row', '{:.1f}')} | {ratio} |")
    return "\n".join(out)


def sink_target(cond):
    """yes/no for a target over the kafka path, or "not measured"."""
    if "kafka_rows/s" not in sink or not sink.get("limit_rows/s"):
        return "not measured"
    return "yes" if cond(sink["kafka_rows/s"], sink["limit_rows/s"]) else "no"


merge = bench_line("merge.txt", "InsertAndMerge")
MERGE_VARIANTS = (("base5", "the engine's default merge selector (`merge_selector_base` 5)"),
                  ("as_migrated", "as migrated (`merge_selector_base` 20, migration 0012)"))


def merge_rows():
    """One table row per variant of BenchmarkInsertAndMerge: CPU per row
    with the merges, and the merges' line from the benchmark's output."""
    lines = raw_lines("merge.txt", "BenchmarkInsertAndMerge ").splitlines()
    out = []
    for name, what in MERGE_VARIANTS:
        detail = next((l.split(";", 2)[-1].strip() for l in lines if l.split()[1:2] == [name]), "not measured")
        out.append(f"| {what} | {fig(merge, f'{name}_cpu_us/row', '{:.2f}', ' µs')} | {detail} |")
    return "\n".join(out)


sustain, queries = bench_line("sustain.txt", "Sustained"), bench_line("queries.txt", "QueriesBesideInserts")


def soak_summary(name):
    """The summary lines a failed all-in-one run logged (no result line
    then), joined; "" when there are none."""
    parts = (l.split(".go:", 1)[-1].split(": ", 1)[-1].strip() for l in raw_lines(name, "soak_test.go:").splitlines())
    return "; ".join(p for p in parts if not p.endswith(":"))  # not the heading of the server's log


def soak_rows(d, name):
    """The table rows of one all-in-one load run (internal/soak)."""
    if not d:
        if soak_summary(name):
            return f"| the run, as it logged itself (it failed, so no result line) | {soak_summary(name)} | FAILED |"
        return "| (not measured) | | |"
    verdict = "FAILED: events lost or duplicated, load shed, or the load generator failed" if failed(name) else "passed"
    return f"""| load: `/v1/events`, batches of 50, open loop, {fig(d, 'run_s')} s | **{fig(d, 'load_ev/s')} events/s** accepted | target {fig(d, 'target_ev/s')} events/s; {fig(d, 'failed_events')} events failed |
| ingest round trip of the load's requests | p99 {fig(d, 'ingest_p99_ms', '{:,.0f}', ' ms')}, max {fig(d, 'ingest_max_ms', '{:,.0f}', ' ms')} | {fig(d, 'probes_refused')} probes answered 503 (ingest.max_inflight full) |
| freshness (2xx -> visible to a query) of {fig(d, 'probes')} probes, one every 100 ms, looked for every {fig(d, 'poll_ms')} ms | p50 {fig(d, 'fresh_p50_s', '{:.2f}', ' s')}, **p99 {fig(d, 'fresh_p99_s', '{:.2f}', ' s')}**, max {fig(d, 'fresh_max_s', '{:.2f}', ' s')} | limit p99 < 3 s |
| local log backlog (consumer cursor lag on `/metrics`, sampled every second) | max **{fig(d, 'backlog_max')} records**; the log's directory at most {fig(d, 'log_max_MiB', '{:,.0f}', ' MiB')} | drained {fig(d, 'drain_s', '{:.1f}', ' s')} after the load stopped |
| server RSS (VmHWM of the `telemetry serve` process alone; the load generator runs in the benchmark's process) | max **{fig(d, 'rss_max_MiB', '{:,.0f}', ' MiB')}** | |
| events table's active parts, sampled every 5 s (merges run at `embedded.merge_nice`) | max {fig(d, 'parts_max')}, at the end of the load {fig(d, 'parts_end')} | Go threads: `embedded.go_procs_per_cpu` {settings['go_procs_per_cpu']} per CPU |
| acknowledged against stored | {fig(d, 'acked')} acknowledged; lost {fig(d, 'lost')}, duplicated {fig(d, 'duplicated')} | {verdict} |"""


def keeps_up(d):
    """Target verdict of the sustained run: 50,000 events/s for 5 minutes
    with freshness p99 < 3 s and nothing lost or duplicated."""
    if not d:
        return f"no (the run failed: {soak_summary('sustain.txt')})" if soak_summary("sustain.txt") else "not measured"
    if d["target_ev/s"] < 50000 or d["run_s"] < 300:
        return f"not measured at the target (this run: {d['target_ev/s']:,.0f} events/s for {d['run_s']:.0f} s)"
    ok = d["load_ev/s"] >= 0.98 * d["target_ev/s"] and d["fresh_p99_s"] < 3 and not failed("sustain.txt")
    return (f"{'yes' if ok else 'no'} ({d['load_ev/s']:,.0f} events/s; freshness p99 {d['fresh_p99_s']:.2f} s; "
            f"backlog max {d['backlog_max']:,.0f} records; RSS max {d['rss_max_MiB']:,.0f} MiB)")


def fresh_beside_queries(d):
    """Target verdict of freshness p99 < 3 s while dashboard queries run."""
    if not d:
        return "not measured"
    return (f"{'yes' if d['fresh_p99_s'] < 3 else 'no'} ({d['fresh_p99_s']:.2f} s at {d['load_ev/s']:,.0f} events/s "
            f"over {d.get('prefill_rows', 0):,.0f} prefilled rows; queries p50 {d.get('query_p50_s', 0):.2f} s, {d.get('query_errors', 0):.0f} stopped or failed)")
fresh = text("fresh.txt")
f50, f95, f99 = metric(fresh, "fresh_p50_s"), metric(fresh, "fresh_p95_s"), metric(fresh, "fresh_p99_s")
fresh_rate, fresh_probes = metric(fresh, "load_rate_ev/s"), metric(fresh, "probes")
settings = j("settings.json")


def series(dump, name, **labels):
    """The sum of the points of series name in one /metrics dump whose
    labels include labels."""
    total = 0.0
    for lbls, v in re.findall(r"^" + name + r"\{([^}]*)\} ([\d.e+]+)$", text(dump + ".metrics"), re.M):
        if all(f'{k}="{val}"' in lbls for k, val in labels.items()):
            total += float(v)
    return total


def delta(before, after, name, **labels):
    """How much series name grew between two dumps."""
    return series(after, name, **labels) - series(before, name, **labels)


def produce(before, after):
    """Records per produce request and mean round trip between two dumps."""
    reqs = delta(before, after, "telemetry_kafka_produce_records_count")
    recs = delta(before, after, "telemetry_kafka_produce_records_sum")
    rtt = delta(before, after, "telemetry_kafka_produce_duration_seconds_sum")
    if reqs <= 0:
        return "n/a"
    return f"{recs / reqs:,.0f} records per produce request, round trip {rtt / reqs * 1000:.1f} ms"


def server_within(before, after, le="0.01"):
    """The share of /v1/events requests the collector answered within le
    seconds between two dumps, from its own request-duration histogram
    (exact at a bucket bound, so no interpolation)."""
    bucket = "telemetry_ingest_request_duration_seconds_bucket"
    total = delta(before, after, bucket, route="/v1/events", le="+Inf")
    if total <= 0:
        return "n/a"
    within = delta(before, after, bucket, route="/v1/events", le=le)
    return f"server side, {within / total:.1%} of requests answered within {float(le) * 1000:g} ms"


def perf_latency(name):
    """p50 and p99 from a kafka-producer-perf-test summary line."""
    last = text(name).strip().splitlines()[-1]
    m = re.search(r"(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th", last)
    return (int(m.group(1)), int(m.group(3))) if m else (float("nan"), float("nan"))


perf70_p50, perf70_p99 = perf_latency("perf70.txt")


def file_price():
    """The CPU time to create a file on the run's data filesystem and on
    tmpfs (scripts/filecreate.py), as a sentence."""
    try:
        d = j("filecreate.json")
    except (OSError, ValueError):
        return "The price of creating a file was not measured."
    data = next((v for k, v in d.items() if k != "/dev/shm"), None)
    shm = d.get("/dev/shm")
    if data is None:
        return "The price of creating a file was not measured."
    out = (f"Creating a file (and writing 128 bytes) took **{data['create_us']:,.0f} µs** of CPU on the "
           f"filesystem the runs keep their data on ({data['fs']})")
    if shm:
        out += f", {shm['create_us']:,.0f} µs on tmpfs"
    return out + (" ([scripts/filecreate.py](../scripts/filecreate.py), median of 3 rounds of 3,000): "
                  "every part the engine writes, for an insert or a merge, is a directory of files.")


def scaling_lines():
    """The figures TestClusterScaling printed (make bench-cluster), keyed by
    each line's first key=value ("ingest_processes=1", "broker_limit", ...):
    ({key: value}, the note in parentheses)."""
    out = {}
    try:
        t = text("cluster.txt")
    except OSError:
        return out
    for line in t.splitlines():
        line = line.strip()
        if not line.startswith("scaling "):
            continue
        body, _, note = line[len("scaling "):].partition(" (")
        words = body.split()
        kv = dict(w.split("=", 1) for w in words if "=" in w)
        out[words[0]] = (kv, note.rstrip(")"))
    return out


def cluster_rows():
    """The scale-out table: each figure beside its limit from this run."""
    sc = scaling_lines()
    if not sc:
        return "| cluster figures | not measured (see the run's output) | | |"
    num = lambda v: f"{float(v):,.0f}"
    rows = []
    broker_kv, broker_note = sc.get("broker_limit", ({}, ""))
    blim = float(broker_kv.get("records_per_s", "nan"))
    for k in (1, 2):
        kv, note = sc.get(f"ingest_processes={k}", ({}, ""))
        if kv:
            rows.append(f"| ingest, {k} process{'es' if k > 1 else ''} | **{num(kv['events_per_s'])} events/s**, "
                        f"{kv['ingest_cpu_cores']} cores of ingest | broker's own producer against the cluster: {num(blim)} records/s ({broker_note}) "
                        f"| {float(kv['events_per_s']) / blim:.0%} |")
    lim = sink.get("limit_rows/s")
    for k in (1, 2, 3):
        kv, note = sc.get(f"consume_processes={k}", ({}, ""))
        if kv:
            ratio = f"{float(kv['rows_per_s']) / lim:.0%}" if lim else "not measured"
            rows.append(f"| consumer, {k} `telemetry consume` process{'es' if k > 1 else ''} | **{num(kv['rows_per_s'])} rows/s** "
                        f"({num(kv['rows'])} rows), engine {kv['engine_cpu_cores']} cores | the engine's own in-process insert "
                        f"(section above): {fig(sink, 'limit_rows/s')} rows/s; {note} | {ratio} |")
    kv, note = sc.get("producer_latency", ({}, ""))
    if kv:
        rows.append(f"| produce latency at {num(kv['rate'])} events/s (half of one process's peak) | ours p50 {kv['ours_p50_ms']} ms, "
                    f"**p99 {kv['ours_p99_ms']} ms** (round trip p99 {kv.get('ours_round_trip_p99_ms', '?')} ms; {num(kv['ours_events_per_s'])} events/s) | perf-test at the same rate: "
                    f"p50 {kv['perf_p50_ms']} ms, p99 {kv['perf_p99_ms']} ms ({num(kv['perf_records_per_s'])} records/s); {note} | |")
    kv, note = next((v for k, v in sc.items() if k.startswith("lag_recovery_s")), ({}, ""))
    if kv:
        rows.append(f"| lag recovery after a 60 s consumer stop | **{kv['lag_recovery_s']} s** | {note} | |")
    return "\n".join(rows)


over_total = sum(over["statuses"].values()) or 1
shed = sum(v for k, v in over["statuses"].items() if k in ("503", "429"))

print(f"""# Benchmarks

Written by `make bench` ([scripts/bench.sh](../scripts/bench.sh)) on
{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({platform.machine()}), of
which the hypervisor gave **{steal_share()}** to other guests during the run (steal time in
/proc/stat; this VM's figures move with it, so compare runs only beside their limits).
{file_price()}
The broker, the load generator and the collector share these cores, and every
figure below comes from this one run; each is set beside the limit of the part
below it, measured in the same run.

## Ingest -> Kafka

| measure | figure | limit below (same run) | ratio |
|---|---|---|---|
| `/v1/events`, batches of 50, {conc} senders, {secs}s, median of 3 runs | **{peak['events_per_sec']:,.0f} events/s** (runs: {peak_runs}) | broker's own `kafka-producer-perf-test`: {broker:,.0f} records/s ({size} B, acks=all, lz4) | **{peak['events_per_sec'] / broker:.0%}** |
| latency at full speed | p50 {ms(peak['latency']['P50'])}, p99 {ms(peak['latency']['P99'])} | {produce('start', 'peak')} | |
| latency at half of peak ({half['events_per_sec']:,.0f} ev/s), open loop ({half['concurrency']} senders), median of 3 runs | p50 {ms(half['latency']['P50'])}, **p99 {ms(half['latency']['P99'])}** (runs: {half_p99s}); {split(half)} | {produce('peak', 'half')}; {server_within('peak', 'half')} | |
| latency at 70% of peak ({p70['events_per_sec']:,.0f} ev/s), open loop ({p70['concurrency']} senders), median of 3 runs | p50 {ms(p70['latency']['P50'])}, **p99 {ms(p70['latency']['P99'])}** (runs: {p70_p99s}); {split(p70)} | broker's own producer at the same rate (perf-test, linger.ms=0): p50 {perf70_p50} ms, p99 {perf70_p99} ms; ours: {produce('half', 'p70')}; {server_within('half', 'p70')} | |
| `/v1/beacon`, one event per request, {int(conc) * 4} senders | **{beacon['requests_per_sec']:,.0f} requests/s**, p99 {ms(beacon['latency']['P99'])} | | |
| unique user-agent flood (every event a new agent) | {flood['events_per_sec']:,.0f} events/s ({flood['events_per_sec'] / max(peak['events_per_sec'], 1):.0%} of the normal mix) | parse budget {settings['ua_parse_budget']:,}/s; the rest marked `device.pending` | |
| overload: {int(conc) * 8} senders, `max_inflight` {settings['overload_max_inflight']} | {over['events_per_sec']:,.0f} events/s accepted; {shed / over_total:.0%} of requests shed with 503/429 + Retry-After | | |
| collector RSS (VmHWM) | {rss_peak} MiB after the full-speed run, {rss_flood} MiB after the UA flood, {rss_over} MiB under overload | | |
| all-in-one ingest (bus: local log, fsync always) | {logbus['events_per_sec']:,.0f} events/s, p99 {ms(logbus['latency']['P99'])} | | |
| failed events (non-2xx other than shedding, or transport) | full {peak['failed_events']}, half {half['failed_events']}, beacon {beacon['failed_events']} | | |

## Our own CPU per event

| benchmark | per event | allocations per event |
|---|---|---|
| decode + validate + enrich + encode, warm UA cache | **{float(dve.group(1)) / 1000:.1f} µs** | {dve.group(2)} B, {dve.group(3)} allocs |
| whole `/v1/events` handler, batch of 50, no broker | {float(hb.group(1)) / 1000:.1f} µs | {int(hb.group(2)) / 50:,.0f} B, {int(hb.group(3)) / 50:.1f} allocs |
| whole `/v1/beacon` handler, one event per request, no broker | {float(hbeacon.group(1)) / 1000:.1f} µs | {int(hbeacon.group(2)):,} B, {hbeacon.group(3)} allocs |

## Completeness audit: cost

`audit.enabled` (default true) beside false, in this run. Ingest with the audit on publishes a
group's events (a group commit of whole requests), each partition's share closed by the audit records counting it in the same record batch, before the 2xx (to the local log: one append); the consumer keeps its counts (and ingest's
records, and its count of the rows each batch's insert stores) durable before each batch's rows and inserts those of
several batches at once (the engine sink: at 50,000 rows or every `audit.flush_interval`, 30 s; 5 s until 2026-12-05); since migration 0014 no view on the events table
counts the inserted rows (the consumer does). Ingest
runs in two processes, one per setting, loaded at the same time by a load generator each (so each
has about half the machine; median of {AUDIT_INGEST_RUNS} runs each). The consumer's ways alternate BENCH_AUDIT_ROUNDS times (BenchmarkAuditCost), at the default batch
size: their rates are each way's median run, their cost the median of the rounds' own costs (each round
runs the ways back to back); these swing by up to 20% a round with the machine's speed. So the
consumer's cost is also taken side by side (BenchmarkAuditCostSideBySide): off and on drain their logs
at the same time, each in a process of its own with its own engine (drains of {fig(auditside, 'rows_per_drain')} rows, of the same
two logs in every round: the events alone, and the same events with ingest's audit record after each request's 50), each way's rate and its process's
CPU per row taken while both run, in the middle of their drains (from when both hold a tenth of their rows
to when the first holds nine tenths: to the first one's end favoured it, its last batches having nothing
after them in flight). (Two consumers in one process shared one engine, whose merges of the
"on" side's audit parts then slowed both: that hid part of the cost.) Each process runs on half of the
CPUs and the two trade halves twice a second: unpinned, the side with more threads was given more CPU.
A process's speed is a draw of its own (two identical consumers side by side differed by up to 19%), so
each round is a crossover: two phases, one process running off then on, the other on then off; a
round's cost is the geometric mean of each process's own on/off ratio, which neither a process's draw
nor a drift of the machine between the phases moves. The figure is the median of the rounds, with a
distribution-free 95% interval of that median (the sign test). The two logs are written together, a thousand
messages of each in turn, so that neither is the older in the page cache; the control row runs the same method
with the audit off on both sides, one reading the log that holds the records: its figure is what reading them
costs, and one well below zero would mean the method favours a log. The headline of each row is the CPU
per row until the merges settled: each process's CPU time from its consumer's start to its last row and, with the audit on, the insert of the counts it still kept then,
and on until its engine had run no merge for a second (the same crossover's geometric mean per round): each process has one core
and is CPU-bound, so that is the inverse of its throughput, for the same work done by both ways (every row stored, and merged as far
as the engine merges it). Until 2026-12-06 the CPU ran to the last row only (shown beside it): a drain's end leaves merges of the
parts it wrote undone, and the faster way leaves more of them (in this run {undone(auditside, 'audit_off')} with the audit off,
{undone(auditside, 'audit_on')} with it on, the medians' difference), so that figure charged the slower way with merges the other had merely
left for later, and grew with any slowdown. The rate to the last row and the mid-drain window's figures follow; the window
(one span of time for both) favours the slower way, its part of it lying earlier in its drain, where a row
costs less than near the end (more parts to merge), so it is shown, not used. The target is at most 3% of each.
The same method runs over drains of {fig(auditlong, "rows_per_drain")} rows too
([scripts/bench_audit.sh](../scripts/bench_audit.sh), also `make bench-audit`), nearer what a consumer sustains: there the
target is the throughput (the rate to the last row), as over long drains the settled figure rests on the merges the engine
runs after the end. {long_control()}

| measure | audit off | audit on | cost (throughput lost; CPU added) |
|---|---|---|---|
{audit_rows()}

## Bus -> ClickHouse engine

`BenchmarkSink`, batch size {fig(sink, 'batch_rows')} rows on every path, the same rows and insert settings
(`BENCH_ROWS`={int(rows):,}); CPU time and allocations per row as the benchmark reports them; the ratio is to the
engine's own in-process insert of the same rows in the same batches.

| path | rows/s | CPU per row | allocations per row | ratio to the limit |
|---|---|---|---|---|
{sink_rows()}

Largest part count of the events table during the runs: {fig(sink, 'max_parts')}.

The limit above stops at its last insert, before most of the merges its parts set off. With them:
`BenchmarkInsertAndMerge` inserts 4,000,000 generated events in Native batches of 50,000, one a
second (`telemetry serve` at 50,000 events/s), and counts the process's CPU until no merge has run
for 3 s.

| events table | CPU per row, inserts and merges | merges |
|---|---|---|
{merge_rows()}

| measure | figure | limit below (same run) |
|---|---|---|
| freshness (2xx -> visible to a query) of {fresh_probes:,.0f} probes under {fresh_rate:,.0f} events/s, all-in-one, in-process | p50 {f50:.2f} s, **p95 {f95:.2f} s**, p99 {f99:.2f} s | consumer.batch_interval {settings['batch_interval']} |

## All-in-one, sustained (`telemetry serve`, local log bus)

`BenchmarkSustained` (internal/soak) starts the built binary as its own process on a fresh data
directory and drives it over HTTP with the project's load generator.

| measure | figure | beside |
|---|---|---|
{soak_rows(sustain, "sustain.txt")}

## Dashboard queries beside the load

`BenchmarkQueriesBesideInserts`: the same, at {fig(queries, 'target_ev/s')} events/s, with a dashboard
panel's query every second (one at a time) over an events table prefilled with
{fig(queries, 'prefill_rows')} synthetic rows (prefill took {fig(queries, 'prefill_s', '{:.0f}', ' s')}; the peak RSS
is reset after it, but the engine keeps the memory the prefill grew, so the RSS below is not
comparable with the sustained run's). The queries run on the HTTP interface's pool of engine connections (`embedded.connections`), the
probes' lookups on another of them, and the consumer inserts over a connection of its own, so they run side
by side and share the cores; the server
bounds read-only statements that set no limit with `embedded.max_query_time` = {settings.get('max_query_time', '?')}.

| measure | figure | beside |
|---|---|---|
| dashboard queries run | {fig(queries, 'queries')}, p50 {fig(queries, 'query_p50_s', '{:.2f}', ' s')}, max {fig(queries, 'query_max_s', '{:.2f}', ' s')} | {fig(queries, 'query_errors')} stopped by the bound or failed |
{soak_rows(queries, "queries.txt")}

## Scale out: three-broker KRaft cluster

`TestClusterScaling` (internal/chaos, `make bench-cluster`) against a private three-node cluster on
this machine (every node broker and controller, 512 MiB heaps), topics of 12 partitions, replication
factor 3, min ISR 2. The three JVMs, the load generator, the ingest and consume processes and the one
engine process share the same {os.cpu_count()} cores: the cores, not Kafka, bound these figures.

| measure | figure | limit below (same run) | ratio |
|---|---|---|---|
{cluster_rows()}

## Targets

| target (issues 2, 3, 8, 15, 17) | met? |
|---|---|
| >= 50,000 (issue 2), >= 100,000 (issue 8) events/s through `/v1/events` in batches of 50 | {'yes' if peak['events_per_sec'] >= 50000 else 'no'}; {'yes' if peak['events_per_sec'] >= 100000 else 'no'} ({peak['events_per_sec']:,.0f}) |
| >= 70% of the broker's own producer rate | {'yes' if peak['events_per_sec'] >= 0.7 * broker else 'no'} ({peak['events_per_sec'] / broker:.0%}) |
| >= 10,000 beacon requests/s | {'yes' if beacon['requests_per_sec'] >= 10000 else 'no'} ({beacon['requests_per_sec']:,.0f}) |
| p99 < 20 ms at half load; < 10 ms at 70% of peak | {'yes' if half['latency']['P99'] < 20e6 else 'no'} ({ms(half['latency']['P99'])}); {'yes' if p70['latency']['P99'] < 10e6 else 'no'} ({ms(p70['latency']['P99'])}) |
| <= 10 µs of our own CPU per event, warm UA cache | {'yes' if float(dve.group(1)) <= 10000 else 'no'} ({float(dve.group(1)) / 1000:.1f} µs) |
| consumer >= 150,000 rows/s sustained (kafka path) | {sink_target(lambda k, l: k >= 150000)} ({fig(sink, 'kafka_rows/s')} rows/s; the limit: {fig(sink, 'limit_rows/s')}) |
| >= 50% of the limit at the same batch size (kafka path) | {sink_target(lambda k, l: k >= 0.5 * l)} ({fig(sink, 'kafka_rows/s')} of {fig(sink, 'limit_rows/s')} rows/s) |
| freshness p95 < 2 s at {fresh_rate:,.0f} events/s (p99 < 3 s) | {'yes' if f95 < 2 else 'no'} ({f95:.2f} s); {'yes' if f99 < 3 else 'no'} ({f99:.2f} s) |
| all-in-one consumer keeps up at 50,000 events/s for 5 min: backlog max, freshness p99 < 3 s, RSS | {keeps_up(sustain)} |
| freshness p99 < 3 s while a dashboard query runs every second | {fresh_beside_queries(queries)} |
| the completeness audit costs at most 3% of ingest's throughput (batches; beacons) and of the consumer's (issue 17: the medians, and the 95% intervals' upper bounds) | {audit_target()} |

## Raw lines

```
{gb.strip()}
{text('perf.txt').strip().splitlines()[-1]}
{text('perf70.txt').strip().splitlines()[-1]}
{raw_lines("sink.txt", "rows/s")}
{raw_lines("auditcost.txt", "rows/s")}
{raw_lines("auditside.txt", "audit_cost_%")}
{raw_lines("auditcontrol.txt", "audit_cost_%")}
{raw_lines("auditlong.txt", "audit_cost_%")}
{raw_lines("auditlongcontrol.txt", "audit_cost_%")}
{raw_lines("merge.txt", "BenchmarkInsertAndMerge ")}
{chr(10).join(l for l in fresh.splitlines() if 'fresh' in l)}
{raw_lines("sustain.txt", "fresh")}
{raw_lines("queries.txt", "fresh")}
{raw_lines("cluster.txt", "scaling ")}
```
""")
