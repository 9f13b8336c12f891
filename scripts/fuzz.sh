#!/usr/bin/env bash
# Fuzzes the request path (JSON body, tenant rules, presign core) and the content check with cargo-fuzz and
# libFuzzer for a bounded time per target, growing the corpus in fuzz/corpus/.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
tools="${UPLOAD_TICKETS_TOOLS:-$HOME/.cache/upload-tickets-tools}"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --version 0.13.2 --locked --root "$tools" --quiet
fi
# cargo-fuzz passes -Z sanitizer flags; the machine has one (stable) toolchain, and
# RUSTC_BOOTSTRAP lets it take them.
export RUSTC_BOOTSTRAP=1
for target in tickets content; do
  echo "fuzz: $target for ${seconds}s" >&2
  PATH="$tools/bin:$PATH" cargo fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=1024 -print_final_stats=1
done
