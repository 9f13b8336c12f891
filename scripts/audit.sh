#!/usr/bin/env bash
# Checks every crate in Cargo.lock against the RustSec advisory database: fails on a
# known vulnerability (and on an unsound or unmaintained crate), except the advisories
# .cargo/audit.toml lists, each with its reason. The database is the snapshot in
# ../shared/advisory-db (machines here cannot fetch it; UPLOAD_TICKETS_ADVISORY_DB
# names another copy). cargo-audit is installed once into the tools cache.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${UPLOAD_TICKETS_TOOLS:-$HOME/.cache/upload-tickets-tools}"
db="${UPLOAD_TICKETS_ADVISORY_DB:-../shared/advisory-db}"
version=0.22.2
if ! "$tools/bin/cargo-audit" --version 2>/dev/null | grep -qF " $version"; then
  echo "audit: installing cargo-audit $version into $tools (once)" >&2
  build_dir=$(mktemp -d)
  CARGO_TARGET_DIR="$build_dir" cargo install cargo-audit --version "$version" --locked \
    --no-default-features --root "$tools" --quiet
  rm -rf "$build_dir"
fi
if [ ! -d "$db/crates" ]; then
  echo "audit: no advisory database at $db" >&2
  exit 1
fi
# The lockfile is not committed: resolve it as a build would.
[ -f Cargo.lock ] || cargo generate-lockfile --quiet
# --stale: the snapshot is older than the tool's freshness window, by design.
"$tools/bin/cargo-audit" audit --db "$db" --no-fetch --stale
