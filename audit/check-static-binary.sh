#!/bin/sh
# Builds the release binary fully static, checks that it is, reports its size, and runs it in an
# empty root (a directory holding only the binary) against the fake Codex backend on loopback.
#
# This is the local stand-in for the container's build: the Dockerfile builds for
# x86_64/aarch64-unknown-linux-musl, which rustup cannot download on a machine without network.
# Here the binary is glibc with `-C target-feature=+crt-static`, and getrandom is told to call
# getrandom(2) through libc directly (`getrandom_backend="linux_getrandom"`), as it does on musl
# by default: its default glibc backend looks the function up with dlsym, which a static binary
# cannot do, and then falls back to /dev/urandom, which an empty root (unlike a container) lacks.
#
# The build goes through cargo-auditable (a build-time cargo subcommand, nothing at run time),
# which embeds the dependency list as compressed JSON in a `.dep-v0` section, readable by
# `cargo audit bin`, Trivy, Grype and Syft. The script checks that the section is there.
#
# Needs root (unshare --mount --root) and cargo-auditable
# (`cargo install cargo-auditable --locked --version 0.7.7`). Usage: sh audit/check-static-binary.sh
# Environment: CARGO_TARGET_DIR (default ./target), MAX_BINARY_BYTES (default 6 MiB).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
limit=${MAX_BINARY_BYTES:-6291456}

fail() {
    echo "check-static-binary: $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root for unshare --mount --root"
for tool in file ldd readelf objcopy strip unshare cargo-auditable python3; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

# Nothing that loads host libraries or the host's certificate store at run time.
for crate in openssl-sys native-tls rustls-native-certs rustls-platform-verifier aws-lc-sys; do
    if grep -q "^name = \"$crate\"$" Cargo.lock; then
        fail "Cargo.lock pulls in $crate"
    fi
done
grep -q '^name = "webpki-roots"$' Cargo.lock || fail "webpki-roots (built-in roots) is missing"

echo "== cargo auditable build --release --target $triple (static)"
RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
    cargo auditable build --release --locked --target "$triple"
bin=$target_dir/$triple/release/codex-sub-proxy

echo "== is it static?"
described=$(file -b "$bin")
echo "file: $described"
case $described in
*"statically linked"* | *"static-pie linked"*) ;;
*) fail "file does not call it static" ;;
esac
linked=$(ldd "$bin" 2>&1 || true)
echo "ldd: $linked"
case $linked in
*"statically linked"* | *"not a dynamic executable"*) ;;
*) fail "ldd lists shared libraries" ;;
esac
if readelf -d "$bin" | grep -q '(NEEDED)'; then
    fail "the dynamic section has NEEDED entries"
fi
if readelf -lW "$bin" | grep -q 'INTERP'; then
    fail "the binary asks for a program interpreter"
fi
echo "readelf: no NEEDED entries, no INTERP"

copy=$(mktemp)
trap 'rm -f "$copy" "$copy.dep"' EXIT

echo "== embedded dependency list (cargo-auditable)"
objcopy --dump-section .dep-v0="$copy.dep" "$bin" "$copy" || fail "no .dep-v0 section"
python3 - "$copy.dep" <<'PY' || fail "the .dep-v0 section is not a dependency list"
import json, sys, zlib
packages = json.loads(zlib.decompress(open(sys.argv[1], "rb").read()))["packages"]
names = {p["name"] for p in packages}
assert {"codex-sub-proxy", "ureq", "rustls", "ring", "tiny_http"} <= names, names
print(f".dep-v0: {len(packages)} packages, e.g. " + ", ".join(
    f"{p['name']} {p['version']}" for p in packages if p["name"] in ("ureq", "rustls", "ring")))
PY

echo "== size"
cp "$bin" "$copy"
strip "$copy"
built=$(wc -c < "$bin" | tr -d ' ')
stripped=$(wc -c < "$copy" | tr -d ' ')
mib=$(awk -v n="$stripped" 'BEGIN { printf "%.2f", n / 1048576 }')
echo "as built: $built bytes; stripped: $stripped bytes ($mib MiB); limit $limit bytes"
[ "$stripped" -le "$limit" ] || fail "the stripped binary is larger than $limit bytes"

echo "== in an empty root: --version, serving, --healthcheck, smoke test, SIGTERM"
STATIC_BINARY=$bin cargo test --locked --test static_binary -- --ignored --nocapture
