# syntax=docker/dockerfile:1
# presence-gateway: build with the Rust toolchain, run on Debian slim as an
# unprivileged user. See docs/operations.md.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
COPY static ./static
RUN cargo build --release --locked --bin presence-gateway \
    && strip target/release/presence-gateway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/presence-gateway \
       --create-home --shell /usr/sbin/nologin gateway
COPY --from=build /src/target/release/presence-gateway /usr/local/bin/presence-gateway
USER 10001:10001
WORKDIR /var/lib/presence-gateway
# Inside a container the gateway must listen on all interfaces; it then
# refuses to start unless [auth] is configured (exit 64).
ENV PRESENCE_GATEWAY__SERVER__LISTEN=0.0.0.0:8080 \
    PRESENCE_GATEWAY__STORE__PATH=/var/lib/presence-gateway/gateway.db
VOLUME ["/var/lib/presence-gateway"]
EXPOSE 8080
# SIGTERM starts the graceful drain (server.drain_secs).
STOPSIGNAL SIGTERM
ENTRYPOINT ["presence-gateway"]
CMD ["serve", "--config", "/etc/presence-gateway/gateway.toml"]
