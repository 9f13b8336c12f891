#!/usr/bin/env bash
# The whole test suite: installs what the tests need (if missing), then runs every test
# (unit, integration, differential against the seed, properties, doc tests, and the
# container image built from the Dockerfile and run as it ships).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
# The container image from the Dockerfile (cached layers: quick when nothing changed), for
# tests/api/container.rs, which runs it as it ships.
export UPLOAD_TICKETS_IMAGE=localhost/upload-tickets:test
bash scripts/build-image.sh "$UPLOAD_TICKETS_IMAGE"
cargo test --all-features "$@"
