#!/usr/bin/env bash
# Local STAND-INS for the two base images the Dockerfile names, made from Debian packages
# because no image registry can be reached from our machines. They are tagged with exactly
# the names of the Dockerfile's FROM lines (read from it, so the two cannot drift), and a
# build with `--pull=never` then uses them in place of the registry's images.
#
# - The Rust build image (the first FROM, `rust:<RUST_VERSION>-slim-bookworm`): Debian
#   bookworm minbase with ca-certificates, gcc and libc6-dev, as the official slim image
#   installs; rustup with this machine's toolchain at the version the Dockerfile's
#   RUST_VERSION pins, only the `minimal` profile's components (rustc, rust-std, cargo) as
#   the official image installs them; RUSTUP_HOME, CARGO_HOME, PATH and RUST_VERSION set as
#   there. Differs: documentation and man pages are not stripped as thoroughly as in
#   debian:bookworm-slim, and rustup is this machine's build, not the image's.
# - The runtime (the last FROM, distroless `cc-debian12:nonroot`): the files of glibc,
#   libgcc, libstdc++, libgomp, libssl3, tzdata and netbase, the CA bundle, /etc/passwd
#   and /etc/group with `nonroot` (65532), user 65532, SSL_CERT_FILE; no shell, no package
#   manager, no dpkg database. Differs: Debian's package versions of the day rather than
#   distroless's pinned snapshot, and no /var/lib/dpkg/status.d licence records.
#
# Made once per machine and reused: each image carries a label with a digest of this
# script and of the toolchain it holds; a different digest makes it again.
# Needs root, buildah and debootstrap (Debian packages; scripts/install-test-deps.sh
# installs them). Isolation: chroot (what works on these machines); buildah's default
# storage (overlay here).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "base-images: $*" >&2; }
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

# The names, from the Dockerfile.
rust_version=$(sed -n 's/^ARG RUST_VERSION=\(.*\)$/\1/p' Dockerfile)
mapfile -t froms < <(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile)
builder_image=${froms[0]//\$\{RUST_VERSION\}/$rust_version}
runtime_image=${froms[${#froms[@]} - 1]}
# Stand-ins for these two images only: a Dockerfile naming others (or misspelling these)
# must fail here as it would fail to pull, not get a stand-in under the wrong name.
[ -n "$rust_version" ] && [ "$builder_image" = "rust:$rust_version-slim-bookworm" ] ||
  { log "the first FROM is ${froms[0]}; stand-ins exist for rust:<RUST_VERSION>-slim-bookworm only"; exit 1; }
[[ "$runtime_image" == */distroless/cc-debian12:nonroot ]] ||
  { log "the last FROM is $runtime_image; stand-ins exist for distroless cc-debian12:nonroot only"; exit 1; }

# This machine's toolchain must be the one the Dockerfile pins.
toolchain_dir=$(rustc --print sysroot)
toolchain_version=$(rustc --version | awk '{print $2}')
case "$toolchain_version" in
  "$rust_version" | "$rust_version".*) ;;
  *) log "the Dockerfile pins Rust $rust_version; this machine has $toolchain_version"; exit 1 ;;
esac
stamp=$( (cat "$0"; rustc -vV; cargo -V; rustup --version 2>/dev/null) | sha256sum | cut -c1-16)

current() { # the image $1 exists and was made by this script as it is now
  [ "$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "upload-tickets.stand-in"}}' "$1" 2>/dev/null)" = "$stamp" ]
}
make_builder=1 make_runtime=1
if current "$builder_image"; then make_builder=""; log "reusing $builder_image (stand-in $stamp)"; fi
if current "$runtime_image"; then make_runtime=""; log "reusing $runtime_image (stand-in $stamp)"; fi
[ -n "$make_builder$make_runtime" ] || exit 0

mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { log "no Debian mirror found in the apt sources"; exit 1; }

work=$(mktemp -d /var/tmp/base-images.XXXXXX)
container=""
cleanup() {
  [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# `$1` made from the directory `$2`, with the buildah config arguments that follow.
commit() {
  local name=$1 root=$2
  shift 2
  container=$(buildah from scratch)
  # Through a mount, not `buildah copy` (which makes every file root's): owners and modes
  # as they are, /home/nonroot 65532's.
  tar -C "$root" -cf - . | tar -C "$(buildah mount "$container")" -xpf - --numeric-owner
  buildah umount "$container" >/dev/null
  buildah config --label "upload-tickets.stand-in=$stamp" "$@" "$container"
  buildah commit --quiet --rm "$container" "$name" >/dev/null
  container=""
  log "made $name"
}

log "debootstrap bookworm (minbase, gcc, libc6-dev, ca-certificates)"
build=$work/build
debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev,tzdata,netbase \
  bookworm "$build" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }

# The runtime, from the same packages' files (not installed: no maintainer scripts, no
# dpkg database).
if [ -n "$make_runtime" ]; then
  run=$work/run
  mkdir -p "$run"
  for package in libc6 libgcc-s1 libstdc++6 libgomp1 libssl3 tzdata netbase; do
    deb=$(ls "$build"/var/cache/apt/archives/"${package}"_*.deb)
    dpkg-deb -x "$deb" "$run"
  done
  rm -rf "$run"/usr/share/doc "$run"/usr/share/lintian "$run"/usr/share/man "$run"/usr/share/info
  install -D -m 0644 "$build/etc/ssl/certs/ca-certificates.crt" "$run/etc/ssl/certs/ca-certificates.crt"
  cp "$build/usr/lib/os-release" "$run/etc/os-release"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$run/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' 'nonroot:x:65532:' >"$run/etc/group"
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$run/etc/nsswitch.conf"
  install -d -m 0700 -o 0 -g 0 "$run/root"
  install -d -m 0700 -o 65532 -g 65532 "$run/home/nonroot"
  install -d -m 1777 "$run/tmp"
  commit "$runtime_image" "$run" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --user 65532:65532 --workingdir /home/nonroot
fi
[ -n "$make_builder" ] || exit 0

log "the Rust toolchain $toolchain_version (minimal profile) into the build image"
rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/* "$build"/usr/share/doc/* \
  "$build"/usr/share/man/*
rustup_home=$build/usr/local/rustup
cargo_home=$build/usr/local/cargo
triple=$(rustc -vV | sed -n 's/^host: //p')
toolchain=$rustup_home/toolchains/$toolchain_version-$triple
mkdir -p "$toolchain/lib/rustlib" "$cargo_home/bin"
for component in rustc cargo rust-std; do
  manifest=$toolchain_dir/lib/rustlib/manifest-$component-$triple
  sed -n 's/^\(file\|dir\)://p' "$manifest" | (cd "$toolchain_dir" && xargs cp -a --parents -t "$toolchain")
  cp "$manifest" "$toolchain/lib/rustlib/"
  echo "$component-$triple" >>"$toolchain/lib/rustlib/components"
done
cp "$toolchain_dir/lib/rustlib/rust-installer-version" "$toolchain/lib/rustlib/"
cat >"$rustup_home/settings.toml" <<EOF
version = "12"
default_toolchain = "$toolchain_version-$triple"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
install -m 0755 "$(command -v rustup)" "$cargo_home/bin/rustup"
for proxy in cargo rustc rustdoc; do ln "$cargo_home/bin/rustup" "$cargo_home/bin/$proxy"; done
commit "$builder_image" "$build" \
  --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
  --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env RUST_VERSION="$toolchain_version" --cmd bash
