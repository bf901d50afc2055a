#!/usr/bin/env bash
# bench_audit.sh [WORK]: the completeness audit's cost to the consumer's
# throughput over long drains (issue 17), side by side with the audit off.
# Figures, never assertions.
#
# BenchmarkAuditCostSideBySide (sinks/consumer) as make bench runs it
# (bench.sh 8b: drains of 2,000,000 rows), over drains of
# BENCH_AUDIT_LONG_ROWS (default 6,000,000) rows: BENCH_AUDIT_LONG_ROUNDS
# rounds (default 6) of the audit off against on, then
# BENCH_AUDIT_LONG_CONTROL_ROUNDS (default 2) of the method's control (off
# against off reading the log with ingest's audit records). Why longer
# drains: a consumer's throughput is what it sustains, and a drain of 2M
# rows (some 30 s) is mostly its start and its end. Its table's merges
# cost more per row as it grows (2026-12-06: some 13 CPU µs a row over 2M
# rows, 25-30 over 6M), and the end of a drain leaves merges undone, more
# of them the faster the drain, which made the rate to the last row charge
# the slower way with merges the faster had only deferred (make bench on
# ef04825, 2M rows: +3.6% to the last row where the CPU until the merges
# settled said +1.2%). Over 6M rows the rate is the measure: the settled
# CPU then swings with the large merges the engine runs after a drain's
# end (make bench-audit on 5ad62e0: its control, two ways doing the same
# work, said +2.2% settled and -0.0% in rate). A round is some 4.5
# minutes, after 3 writing the logs: some 50 minutes in all.
#
# With WORK (bench.sh passes its work directory) the outputs go there
# (auditlong.txt, auditlongcontrol.txt) for make bench's report. Without
# it (make bench-audit), the script writes docs/benchmarks-audit.md from
# this run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${BENCH_AUDIT_LONG_ROWS:-6000000}
if [[ $# -ge 1 ]]; then
	work=$1
	out=
else
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	out=docs/benchmarks-audit.md
	scripts/chdb.sh fetch >/dev/null
	head -1 /proc/stat >"$work/stat.start" 2>/dev/null || true
fi

side() { # rounds pair file
	echo "== the consumer's audit cost over drains of $rows rows: $2, $1 rounds" >&2
	BENCH_ROWS=$rows BENCH_AUDIT_ROUNDS=$1 BENCH_AUDIT_PAIR=$2 go test ./sinks/consumer -run '^$' \
	  -bench '^BenchmarkAuditCostSideBySide$' -benchtime 1x -timeout 150m 2>&1 | tee "$work/$3" >&2
}
side "${BENCH_AUDIT_LONG_ROUNDS:-6}" audit_off,audit_on auditlong.txt
side "${BENCH_AUDIT_LONG_CONTROL_ROUNDS:-2}" audit_off,off_on_log auditlongcontrol.txt

if [[ -n $out ]]; then
	head -1 /proc/stat >"$work/stat.end" 2>/dev/null || true
	python3 scripts/bench_report.py --audit "$work" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo '+changes')" >"$out"
	echo "wrote $out" >&2
fi
