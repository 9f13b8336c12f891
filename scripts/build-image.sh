#!/usr/bin/env bash
# Builds the container image from the unchanged Dockerfile with buildah, as
# `docker build .` would: usage `scripts/build-image.sh [NAME]` (default
# localhost/upload-tickets:test). What works on our machines: chroot isolation; no
# registry, so the base images are local stand-ins made by scripts/base-images.sh under
# the Dockerfile's own names, and `--pull-never` fetches nothing. Docker format, which
# keeps the HEALTHCHECK (OCI has no field for it).
#
# Layers are cached in buildah's storage between runs on one machine: the stage that
# installs cargo-chef and the one that cooks the dependencies are rebuilt only when the
# toolchain or the dependency recipe changes; a source change rebuilds only the final
# `cargo build --release` (fat LTO: a few minutes on 2 cores). The builder stage is
# tagged (localhost/upload-tickets-build:cache) so that pruning the images older builds
# left behind keeps its cached layers.
#
# The build's RUN steps see this machine's CA bundle (a read-only mount, not copied into
# any layer): the package registries are reached through a TLS proxy that bundle trusts.
# `--force-rm`: a failed build leaves no working container behind.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "build-image: $*" >&2; }
image=${1:-localhost/upload-tickets:test}
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

command -v buildah >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1 ||
  { log "buildah and debootstrap are needed: run scripts/install-test-deps.sh"; exit 1; }

bash scripts/base-images.sh

build() {
  buildah bud --layers --force-rm --pull-never --format docker --isolation chroot \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro "$@" .
}
started=$(date +%s)
log "the builder stage"
build --target builder --tag localhost/upload-tickets-build:cache >&2
log "the image $image"
build --tag "$image" >&2
log "built in $(($(date +%s) - started)) s"
# Images a previous build left without a name (its source layers); cached layers still
# under a name are kept.
while [ -n "$(buildah rmi --prune 2>/dev/null)" ]; do :; done
buildah images "$image" >&2
