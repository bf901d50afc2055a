# syntax=docker/dockerfile:1
# The telemetry binary (ingest, migrate, consume, serve). Multi-stage: a
# static Go build, then a small Alpine runtime (busybox wget/nc for the
# health checks of docker-compose.yml).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/telemetry ./cmd/telemetry

FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
 && adduser -D -H -u 10001 telemetry \
 && mkdir -p /var/lib/telemetry && chown telemetry:telemetry /var/lib/telemetry
COPY --from=build /out/telemetry /usr/local/bin/telemetry
USER telemetry
VOLUME /var/lib/telemetry
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/telemetry"]
CMD ["serve"]
