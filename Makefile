# telemetry: build, run and test. Big downloads (Kafka jars, libchdb.so,
# node_modules for tests) are cached under $(CACHE), never in the repo.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/telemetry
export TELEMETRY_CACHE := $(CACHE)
GO ?= go
BIN := bin/telemetry

.PHONY: all build run run-kafka test vet fmt fmt-check clean
all: build

# run: the whole pipeline on embedded defaults, one process, no servers to
# install: ingest on 127.0.0.1:8080, the local durable log as the bus, the
# consumer, the embedded ClickHouse on 127.0.0.1:8123; data under ./data.
run: chdb build
	./$(BIN) serve

# run-kafka: the same with a real Kafka broker as the bus (the local log
# becomes the spool used when Kafka is unreachable).
run-kafka: kafka-up chdb build
	./$(BIN) serve --set bus=kafka

# test: every test, on a fresh machine: fetches and starts what the
# integration tests need (Kafka broker, ClickHouse engine), then runs them.
test: kafka-up chdb sdk-deps dashboards-deps fmt-check vet sdk-test
	$(GO) test -count=1 -timeout 30m ./...

build:
	$(GO) build -o $(BIN) ./cmd/telemetry

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Component targets live in mk/*.mk (kafka.mk: the broker, chdb.mk: the engine).
include $(wildcard mk/*.mk)

clean:
	rm -rf bin

# bench: load runs and benchmarks beside the broker's own limit; writes docs/benchmarks.md.
.PHONY: bench
bench: kafka-up
	scripts/bench.sh

# bench-audit: the completeness audit's cost to the consumer over long drains
# (part of make bench); writes docs/benchmarks-audit.md.
.PHONY: bench-audit
bench-audit: chdb
	scripts/bench_audit.sh
