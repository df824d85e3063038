# kestrel's image: the `kestrel` binary, statically linked (musl), so the copy the
# Kubernetes executor puts into each trial's pod runs in any training image (Debian,
# Alpine, distroless with a shell or not). The init container of every trial runs `cp`
# from this image, so it keeps a minimal userland (Alpine's).
#
#   docker build -t kestrel:dev .
#   kind load docker-image kestrel:dev        # on a kind cluster; else push to a registry
FROM rust:1.90-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kestrel \
 && cp target/release/kestrel /kestrel

# The binary must run where there is no musl: a glibc image with nothing else proves it
# is static (the final stage copies from here, so this stage always runs).
FROM debian:bookworm-slim AS check
COPY --from=build /kestrel /kestrel
RUN /kestrel --version

FROM alpine:3.22
COPY --from=check /kestrel /usr/local/bin/kestrel
# The store of `kestrel serve` (a PersistentVolume in deploy/).
RUN mkdir -p /var/lib/kestrel && chown 65532:65532 /var/lib/kestrel
USER 65532:65532
EXPOSE 6789
ENTRYPOINT ["/usr/local/bin/kestrel"]
CMD ["serve", "--listen", "0.0.0.0:6789", "--store", "/var/lib/kestrel"]
