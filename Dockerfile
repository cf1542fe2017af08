# syntax=docker/dockerfile:1
# Paystream images, one build for all three binaries. Pick one with --target:
#   gateway        paystream-gateway (HTTP API, port 8080)
#   worker         paystream-worker  (stream consumer; metrics on 9100)
#   processor-sim  processor-sim     (simulated payment processor, port 8080; for local runs)
# docker-compose.yml and load-tests/compose/docker-compose.yml build these targets.

# ---- build: every binary, release profile, exact Cargo.lock ----
# (The profile keeps line tables for `perf`; the images do not need them: stripped.)
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY common common
COPY gateway gateway
COPY worker worker
COPY load-tests load-tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p paystream-gateway -p paystream-worker -p paystream-load-tests --bins \
 && mkdir -p /out \
 && cp target/release/paystream-gateway target/release/paystream-worker \
       target/release/processor-sim /out/ \
 && strip --strip-debug /out/*

# ---- runtime base: slim Debian, no shell tools added, an unprivileged user ----
FROM debian:bookworm-slim AS runtime
RUN groupadd --system --gid 10001 paystream \
 && useradd --system --uid 10001 --gid paystream --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin paystream
USER 10001:10001
ENV RUST_LOG=info

FROM runtime AS processor-sim
COPY --from=builder /out/processor-sim /usr/local/bin/processor-sim
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/processor-sim"]

FROM runtime AS worker
COPY --from=builder /out/paystream-worker /usr/local/bin/paystream-worker
EXPOSE 9100
ENTRYPOINT ["/usr/local/bin/paystream-worker"]

# Last, so a plain `docker build .` gives the gateway.
FROM runtime AS gateway
COPY --from=builder /out/paystream-gateway /usr/local/bin/paystream-gateway
ENV GATEWAY_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/paystream-gateway"]
