#!/usr/bin/env bash
# The presign core against the seed, in one go on this machine: tickets per second of
# ours (criterion, release build, one thread) and of @aws-sdk/s3-presigned-post (Node,
# one thread), and the ratio. Target: ours <= 3 us per ticket and >= 32x the seed.
#
# Usage: bench/core.sh            (builds the service package's bench without the service
#                                  feature: the core crate and no AWS SDK)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

echo "== ours: cargo bench --bench presign" >&2
cargo bench --no-default-features --bench presign -- --noplot presign/ >&2
ours_ns=$(node -e '
  const e = require(process.argv[1]);
  console.log(e.mean.point_estimate);
' "$PWD/target/criterion/presign/ticket/new/estimates.json")

echo "== seed: node bench/seed-core.mjs" >&2
seed_json=$(node bench/seed-core.mjs 2>/dev/null)

node -e '
  const oursNs = Number(process.argv[1]);
  const seed = JSON.parse(process.argv[2]);
  const oursUs = oursNs / 1000;
  const row = (name, us) => console.log(
    `${name.padEnd(34)} ${us.toFixed(2).padStart(9)} us/ticket ${Math.round(1e6 / us).toString().padStart(10)} tickets/s`);
  console.log(`machine: ${require("os").cpus()[0].model}, ${require("os").cpus().length} cores; ${new Date().toISOString()}`);
  row("upload-tickets presign core", oursUs);
  row("@aws-sdk/s3-presigned-post (seed)", seed.us_per_call);
  console.log(`ratio ours/seed (tickets per second): ${(seed.us_per_call / oursUs).toFixed(1)}x`);
  console.log(`target: <= 3 us per ticket: ${oursUs <= 3 ? "met" : "NOT met"}; >= 32x the seed: ${seed.us_per_call / oursUs >= 32 ? "met" : "NOT met"}`);
' "$ours_ns" "$seed_json"
