#!/usr/bin/env bash
# The presign core as the crate it is published as (crates/s3-presigned-post):
# - its normal dependencies hold no HTTP server or client, no async runtime and no SDK
#   client (`cargo tree` is the evidence; tokio is there only featureless, through the
#   SDK's credential types, which sign nothing and run nothing);
# - its docs build without a warning (broken links included), as docs.rs would build them;
# - its examples run;
# - `cargo publish --dry-run` packages it and builds the package alone.
# Run by .ci/run; `--allow-dirty` passes through for a work tree with changes.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "core-crate: $*" >&2; }

tree=$(cargo tree -p s3-presigned-post -e normal,features --prefix none --no-dedupe)
forbidden='^(axum|hyper|hyper-util|tower|tower-http|reqwest|aws-config|aws-sdk-s3|aws-smithy-runtime|s3s) '
if bad=$(grep -E "$forbidden" <<<"$tree" | sort -u) && [ -n "$bad" ]; then
  log "the core crate depends on a server, client or SDK:"
  echo "$bad" >&2
  exit 1
fi
if bad=$(grep -E '^tokio feature "(rt|rt-multi-thread|net|io-util|fs|process|time|macros)"' <<<"$tree" | sort -u) \
  && [ -n "$bad" ]; then
  log "the core crate pulls in an async runtime:"
  echo "$bad" >&2
  exit 1
fi
log "dependencies: no server, client, runtime or SDK client"

RUSTDOCFLAGS="-D warnings" cargo doc -q -p s3-presigned-post --no-deps
log "docs: no warning"

for example in custom_store multipart check_form; do
  cargo run -q -p s3-presigned-post --example "$example" >/dev/null
done
# The SDK's default chain, from the environment only (no profile, no instance metadata).
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example-secret AWS_REGION=eu-west-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  cargo run -q -p s3-presigned-post --example sdk_config >/dev/null
log "examples ran"

cargo publish --dry-run -p s3-presigned-post "$@"
log "publish --dry-run passed"
