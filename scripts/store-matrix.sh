#!/usr/bin/env bash
# Writes the README's store matrix from `upload-tickets doctor --json` on every store the
# test suite runs (the test the_readmes_store_matrix_is_what_doctor_says fails while the
# README differs from it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
UPDATE_STORE_MATRIX=1 cargo test --all-features --test api -- --exact doctor::the_readmes_store_matrix_is_what_doctor_says
