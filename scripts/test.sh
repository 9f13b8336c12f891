#!/usr/bin/env bash
# The whole test suite: installs what the tests need (if missing), then runs every test
# (unit, integration, differential against the seed, properties, doc tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
cargo test --all-features "$@"
