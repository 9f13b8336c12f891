# syntax=docker/dockerfile:1
# upload-tickets: a small, non-root runtime image.
#   docker build -t upload-tickets .
#   docker run -p 8080:8080 -v $PWD/config.toml:/etc/upload-tickets/config.toml:ro \
#     -e UPLOAD_TICKETS_JWT_SECRET=... -e AWS_REGION=... upload-tickets
# The dependency layer (cargo-chef) is cached apart from the source: editing src/ does
# not rebuild the AWS SDK. A workspace: the service and the presign core crate.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# make: jemalloc's build (the binary's allocator) runs it.
RUN apt-get update && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.73 --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json --bin upload-tickets

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# The service without the dev store (`upload-tickets dev` embeds one; production signs
# for a store someone else runs): no s3s, no s3s-fs in the image.
RUN cargo chef cook --release --no-default-features --features service,jemalloc --recipe-path recipe.json --bin upload-tickets
COPY . .
RUN cargo build --release --no-default-features --features service,jemalloc --bin upload-tickets \
    && install -D -m 0755 target/release/upload-tickets /out/upload-tickets

# glibc and CA certificates, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/upload-tickets /usr/local/bin/upload-tickets
COPY config/example.toml /etc/upload-tickets/config.toml
USER 65532:65532
EXPOSE 8080
ENV UPLOAD_TICKETS__SERVER__LISTEN=0.0.0.0:8080 \
    UPLOAD_TICKETS__SERVER__LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/upload-tickets", "healthcheck", "--url", "http://127.0.0.1:8080/livez"]
# The binary is PID 1 and handles SIGTERM itself: it stops accepting, drains in-flight
# requests within server.shutdown_grace_seconds, and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/upload-tickets"]
CMD ["serve", "--config", "/etc/upload-tickets/config.toml"]
