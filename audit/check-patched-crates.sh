#!/bin/sh
# Checks that each crate under audit/patched-crates is its crates.io release plus exactly the
# documented patch (NAME-VERSION.patch, a `diff -ru` of src/ and Cargo.toml). Fetches the
# pristine releases through cargo (registry access needed once).
# Usage: sh audit/check-patched-crates.sh [--write]   (--write regenerates the .patch files)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# The patched crates, as name@version.
crates='tiny_http@0.12.0 ureq-proto@0.7.1'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/probe/src"
{
  printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\n'
  for pair in $crates; do
    printf '%s = "=%s"\n' "${pair%@*}" "${pair#*@}"
  done
} > "$tmp/probe/Cargo.toml"
: > "$tmp/probe/src/lib.rs"
(cd "$tmp/probe" && cargo fetch --quiet)
failed=0
for pair in $crates; do
  name=${pair%@*}
  version=${pair#*@}
  dir="$name-$version"
  release=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$dir" | head -n 1)
  rm -rf "$tmp/cmp"
  mkdir -p "$tmp/cmp"
  cp -r "$release/src" "$tmp/cmp/release"
  cp -r "$root/audit/patched-crates/$dir/src" "$tmp/cmp/patched"
  cp "$release/Cargo.toml" "$tmp/cmp/release/Cargo.toml"
  cp "$root/audit/patched-crates/$dir/Cargo.toml" "$tmp/cmp/patched/Cargo.toml"
  (cd "$tmp/cmp" && diff -ru release patched | sed -E 's/^(---|\+\+\+) ([^	]*)	.*/\1 \2/' > "$tmp/$dir.patch") || true
  if [ "${1:-}" = "--write" ]; then
    cp "$tmp/$dir.patch" "$root/audit/patched-crates/$dir.patch"
    echo "wrote audit/patched-crates/$dir.patch"
  elif diff -u "$root/audit/patched-crates/$dir.patch" "$tmp/$dir.patch"; then
    echo "patched $name matches the $version release plus the documented patch"
  else
    echo "patched $name differs from release + documented patch" >&2
    failed=1
  fi
done
exit $failed
