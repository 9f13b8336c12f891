#!/usr/bin/env bash
# Says whether the package registry has an @uppy/aws-s3 newer than the one the browser
# tests run (tests/browser/uppy-packages/package.json), so that the next break of the
# signRequest recipe is seen the day the plugin ships, not when a user meets it.
#
# Exit 0: the tested version is the newest. Exit 1: a newer one is published (say which,
# and how to test it). Exit 2: the registry could not be asked.
# CI runs it for information only (.ci/run): a new release upstream is news, not a
# failure of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=tests/browser/uppy-packages/package.json
tested=$(node -p "require('./$manifest').dependencies['@uppy/aws-s3']")
if ! newest=$(npm view @uppy/aws-s3 version 2>/dev/null) || [ -z "$newest" ]; then
  echo "uppy-latest: could not ask the registry for @uppy/aws-s3" >&2
  exit 2
fi
# Newest by semantic version, of the two (sort -V orders 6.10.0 after 6.9.0).
top=$(printf '%s\n%s\n' "$tested" "$newest" | sort -V | tail -n1)
if [ "$top" = "$tested" ]; then
  echo "uppy-latest: @uppy/aws-s3 $tested, the newest published, is the one tested"
  exit 0
fi
cat <<MSG
uppy-latest: @uppy/aws-s3 $newest is published; the tests run $tested.
  Try it: set "@uppy/aws-s3" (and @uppy/core, @uppy/dashboard to their newest) in
  $manifest, run npm install there, then
  cargo test --all-features --test api -- uppy::
  and read the plugin's changelog and s3-client/types.ts for new request fields.
MSG
exit 1
