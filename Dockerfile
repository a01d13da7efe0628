# jobwire's images, one target each (docker-compose.yml builds them all):
#
#   gateway  the HTTP/WebSocket gateway       (services/gateway)
#   runner   the job runner                   (services/runner)
#   setup    creates/updates the topology     (cmd/jobwire-setup), one-shot
#   nats     nats-server, the version go.mod requires
#
# Every image holds static binaries (CGO_ENABLED=0, -trimpath), runs as
# the non-root user 65532 and has jobwire-healthcheck, the health check
# that needs no shell (HEALTHCHECK and compose's healthcheck call it).
#
# Base images are build arguments. Where no registry is reachable (only the
# classic builder, no BuildKit features are used):
#
#   deploy/docker/local-go-image.sh
#   docker build --build-arg GO_IMAGE=jobwire-go:local \
#     --build-arg RUNTIME_IMAGE=scratch --target gateway -t jobwire-gateway .
#
# Every RUN is in exec form, so a Go image without a shell works.

ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
ENV CGO_ENABLED=0
WORKDIR /src
# Modules first: this layer and nats-server's build stay cached until
# go.mod or go.sum change.
COPY go.mod go.sum ./
RUN ["go", "mod", "download"]
RUN ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/nats-server", "github.com/nats-io/nats-server/v2"]
# nats-server's data directory, to be owned by the non-root user.
WORKDIR /out/data/jetstream
WORKDIR /src
COPY . .
RUN ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/", "./services/gateway", "./services/runner", "./cmd/jobwire-setup", "./cmd/jobwire-healthcheck"]

# What every image has: CA certificates, the health check, the user.
FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/jobwire-healthcheck /usr/local/bin/
USER 65532:65532

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/
# Prometheus metrics (/metrics) on a port of their own (docs/operations.md).
ENV HTTP_ADDR=0.0.0.0:8080 METRICS_ADDR=0.0.0.0:9464
EXPOSE 8080 9464
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["jobwire-healthcheck", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["gateway"]

FROM runtime AS runner
COPY --from=build /out/runner /usr/local/bin/
ENV HEALTH_ADDR=0.0.0.0:8081 METRICS_ADDR=0.0.0.0:9464
EXPOSE 8081 9464
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["jobwire-healthcheck", "http://127.0.0.1:8081/readyz"]
ENTRYPOINT ["runner"]

FROM runtime AS setup
COPY --from=build /out/jobwire-setup /usr/local/bin/
ENTRYPOINT ["jobwire-setup"]

# nats-server with deploy/nats's configuration; the data lives in /data
# (mount a volume there). deploy/nats/cluster.conf adds the routes of a
# 3-node cluster (docker-compose.yml).
FROM runtime AS nats
COPY --from=build /out/nats-server /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
COPY deploy/nats/nats.conf deploy/nats/cluster.conf /etc/nats/
EXPOSE 4222 6222 8222
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
  CMD ["jobwire-healthcheck", "http://127.0.0.1:8222/healthz"]
ENTRYPOINT ["nats-server"]
CMD ["-c", "/etc/nats/nats.conf", "-a", "0.0.0.0"]
