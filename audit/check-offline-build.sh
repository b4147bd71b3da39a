#!/bin/sh
# Proves the air-gapped build recipe of audit/README.md: vendor every crate with `cargo vendor`,
# then build with the network off, an empty CARGO_HOME (no registry cache, no user config) and
# crates.io replaced by the vendored directory. The patched crates stay path dependencies.
#
# Usage: sh audit/check-offline-build.sh [--release] [--keep DIR]
#   --release   build the release profile (slower; the default is a debug build of the binary)
#   --keep DIR  vendor into DIR and keep it (e.g. to carry it to an air-gapped machine)
# Vendoring needs crates.io (or a warm registry cache); the build after it needs nothing.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=
keep=
while [ $# -gt 0 ]; do
    case $1 in
    --release) profile=--release ;;
    --keep)
        shift
        keep=${1:?--keep needs a directory}
        ;;
    *)
        echo "usage: sh audit/check-offline-build.sh [--release] [--keep DIR]" >&2
        exit 2
        ;;
    esac
    shift
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vendor=${keep:-$tmp/vendor}
mkdir -p "$tmp/cargo-home"

echo "== cargo vendor into $vendor"
cargo vendor --locked --versioned-dirs "$vendor" 2> "$tmp/vendor.log" > "$tmp/vendor.toml" || {
    cat "$tmp/vendor.log" >&2
    exit 1
}
count=$(find "$vendor" -mindepth 1 -maxdepth 1 -type d | wc -l | tr -d ' ')
echo "vendored $count crates; source replacement:"
sed 's/^/    /' "$tmp/vendor.toml"
if [ -n "$keep" ]; then
    cp "$tmp/vendor.toml" "$keep.config.toml"
    echo "kept $keep and $keep.config.toml"
fi

# The toolchain's own cargo and rustc, so that the rustup proxies (which live in CARGO_HOME)
# are not needed once CARGO_HOME points at the empty directory.
cargo_bin=$(rustup which cargo 2>/dev/null || command -v cargo)
rustc_bin=$(rustup which rustc 2>/dev/null || command -v rustc)

# As root, the build also runs in a network namespace of its own: no interface but a loopback
# that is down, so a download attempt would fail instead of quietly succeeding.
no_network=
if [ "$(id -u)" -eq 0 ] && unshare --net true 2> /dev/null; then
    no_network="unshare --net"
fi

echo "== offline build: CARGO_HOME empty, --offline --frozen, crates-io -> vendored${no_network:+, in a network namespace without network}"
$no_network env CARGO_HOME="$tmp/cargo-home" \
    CARGO_NET_OFFLINE=true \
    RUSTC=$rustc_bin \
    CARGO_TARGET_DIR=$tmp/target \
    "$cargo_bin" build --offline --frozen $profile --bin codex-sub-proxy \
    --config "$tmp/vendor.toml"

if [ -n "$(find "$tmp/cargo-home" -path '*registry*' -print -quit)" ]; then
    echo "check-offline-build: the build touched a registry cache in CARGO_HOME" >&2
    exit 1
fi
bin=$(find "$tmp/target" -maxdepth 2 -type f -name codex-sub-proxy | head -n 1)
"$bin" --version
echo "offline build from vendored sources succeeded"
