# telemetry: build, run and test. Big downloads (Kafka jars, libchdb.so,
# node_modules for tests) are cached under $(CACHE), never in the repo.
SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/telemetry
export TELEMETRY_CACHE := $(CACHE)
GO ?= go
BIN := bin/telemetry

.PHONY: all build run test vet fmt clean
all: build

build:
	$(GO) build -o $(BIN) ./cmd/telemetry

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

# Component targets live in mk/*.mk (kafka.mk: the broker, chdb.mk: the engine).
include $(wildcard mk/*.mk)
