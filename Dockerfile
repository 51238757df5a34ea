# syntax=docker/dockerfile:1
#
# One image for the whole system: every service binary and `orderctl`, the
# one to run chosen by the command (`docker run orderflow outbox-relay`).
# One image rather than seven because the binaries share nearly every
# dependency and are built by one workspace build: one build, one scan, one
# tag to promote, and a Deployment differs from another only in `command`.
#
# Stages: `chef` (toolchain + cargo-chef) -> `planner` (the dependency recipe:
# manifests and lock file only) -> `builder` (dependencies cooked in their own
# layer, which a change to our code does not invalidate; then our crates) ->
# `runtime` (Debian slim, CA certificates, curl for the health check, a
# non-root user; no compiler, no cargo, no sources).
#
#   docker build -t orderflow .
#   docker run --rm orderflow orderctl --help

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION=0.1.77
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The binaries the image carries (each a workspace package of the same name).
ARG BINARIES="order-command outbox-relay summary-projector search-projector status-projector order-query orderctl"
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml or Cargo.lock change.
RUN set -eu; set --; for b in ${BINARIES}; do set -- "$@" -p "$b"; done; \
    cargo chef cook --release --locked --recipe-path recipe.json "$@"
COPY . .
RUN set -eu; set --; for b in ${BINARIES}; do set -- "$@" -p "$b"; done; \
    cargo build --release --locked --bins "$@"; \
    mkdir -p /out; \
    for b in ${BINARIES}; do cp "target/release/$b" /out/; done

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: TLS to managed stores and the OTLP endpoint; curl: the
# HEALTHCHECK below. Versions float with the Debian point release the base
# image carries (pinning them breaks on every security update).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 orderflow \
 && useradd --system --uid 10001 --gid orderflow --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin orderflow
COPY --from=builder /out/ /usr/local/bin/
COPY deploy/image/healthcheck /usr/local/bin/healthcheck
# Logs as JSON for log shippers; every other setting comes from the
# environment of the container (see the README's configuration table).
ENV LOG_FORMAT=json
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
# /healthz of whichever binary is PID 1, on the port its setting names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["healthcheck"]
CMD ["order-command"]
