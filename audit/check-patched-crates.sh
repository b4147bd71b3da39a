#!/bin/sh
# Checks that audit/patched-crates/tiny_http-0.12.0 is the crates.io release plus exactly the
# documented patch. Fetches the pristine release through cargo (registry access needed once).
# Usage: sh audit/check-patched-crates.sh [--write]   (--write regenerates the .patch file)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/probe/src"
printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ntiny_http = "=0.12.0"\n' > "$tmp/probe/Cargo.toml"
: > "$tmp/probe/src/lib.rs"
(cd "$tmp/probe" && cargo fetch --quiet)
release=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tiny_http-0.12.0 | head -n 1)
mkdir -p "$tmp/cmp"
cp -r "$release/src" "$tmp/cmp/release"
cp -r "$root/audit/patched-crates/tiny_http-0.12.0/src" "$tmp/cmp/patched"
(cd "$tmp/cmp" && diff -ru release patched | sed -E 's/^(---|\+\+\+) ([^	]*)	.*/\1 \2/' > "$tmp/actual.patch") || true
if [ "${1:-}" = "--write" ]; then
  cp "$tmp/actual.patch" "$root/audit/patched-crates/tiny_http-0.12.0.patch"
  echo "wrote audit/patched-crates/tiny_http-0.12.0.patch"
  exit 0
fi
if diff -u "$root/audit/patched-crates/tiny_http-0.12.0.patch" "$tmp/actual.patch"; then
  echo "patched tiny_http matches the 0.12.0 release plus the documented patch"
else
  echo "patched tiny_http differs from release + documented patch" >&2
  exit 1
fi
