# syntax=docker/dockerfile:1
# codex-sub-proxy as a container: one fully static musl binary on a distroless base, running as
# a non-root user, with no shell, no package manager and no libc in the image.
#
#   docker build -t codex-sub-proxy .
#   docker run --rm -it -v codex-data:/data codex-sub-proxy --login     # once: link the account
#   docker run -d --name codex-sub-proxy --env-file .env -v codex-data:/data \
#       -p 127.0.0.1:3000:3000 --stop-timeout 30 codex-sub-proxy
#
# The build stage runs on the build machine's platform and cross-compiles for the image's
# (TARGETARCH amd64 -> x86_64-unknown-linux-musl, arm64 -> aarch64-unknown-linux-musl), so a
# multi-platform `docker buildx build --platform linux/amd64,linux/arm64` runs no compiler under
# emulation. Needs BuildKit (the default builder of current Docker).

# The Rust image's tag is written out (not an ARG) so that Dependabot can bump it; Cargo.toml's
# rust-version is the minimum.
FROM --platform=$BUILDPLATFORM rust:1.95-slim-bookworm AS build
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# clang and llvm-ar build ring's C and assembly for either architecture without a cross sysroot
# (ring supports this for musl targets); rustc's bundled rust-lld links against the musl libc
# that rustup's target ships (self-contained). `file` checks the result below. Not pinned to
# Debian package versions: bookworm's point releases replace them, and this stage is not shipped.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang llvm file \
    && rm -rf /var/lib/apt/lists/*
RUN case "$TARGETARCH" in \
        amd64) echo x86_64-unknown-linux-musl > /rust-target ;; \
        arm64) echo aarch64-unknown-linux-musl > /rust-target ;; \
        *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac \
    && rustup target add "$(cat /rust-target)"
# cargo-auditable embeds the dependency list in the binary (a `.dep-v0` section, read by
# `cargo audit bin`, Trivy, Grype, Syft); a build-time tool only, nothing at run time.
RUN cargo install cargo-auditable --locked --version 0.7.7
ENV CC_x86_64_unknown_linux_musl=clang \
    AR_x86_64_unknown_linux_musl=llvm-ar \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes -C linker=rust-lld" \
    CC_aarch64_unknown_linux_musl=clang \
    AR_aarch64_unknown_linux_musl=llvm-ar \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes -C linker=rust-lld"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,id=codex-sub-proxy-target-${TARGETARCH},sharing=locked \
    target="$(cat /rust-target)" \
    && cargo auditable build --release --locked --target "$target" \
    && cp "target/$target/release/codex-sub-proxy" /codex-sub-proxy
# Refuse to ship anything that is not static; prepare the volume's mount point for uid 65532.
RUN file /codex-sub-proxy \
    && file /codex-sub-proxy | grep -Eq 'statically linked|static-pie linked' \
    && mkdir -p /data \
    && chown 65532:65532 /data \
    && chmod 0700 /data

# `docker buildx build --target binary --output type=local,dest=dist .` exports just the binary
# (the release workflow attaches these to GitHub releases).
FROM scratch AS binary
COPY --from=build /codex-sub-proxy /codex-sub-proxy

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="codex-sub-proxy" \
      org.opencontainers.image.description="A small, auditable OpenAI-compatible proxy for ChatGPT/Codex subscription-backed models" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /codex-sub-proxy /usr/local/bin/codex-sub-proxy
COPY --from=build --chown=65532:65532 /data /data
# /data holds CREDENTIALS_FILE and its .lock and .proxy-state.json sidecars. It is also the
# working directory, so a relative CREDENTIALS_FILE (as in .env.example) lands in the volume too.
WORKDIR /data
VOLUME ["/data"]
ENV HOST=0.0.0.0 \
    PORT=3000 \
    CREDENTIALS_FILE=/data/credentials.json
USER 65532:65532
EXPOSE 3000
# No shell or curl in the image: the binary checks itself (GET /healthz on $PORT, 2 s timeout).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/codex-sub-proxy", "--healthcheck"]
# SIGTERM drains in-flight requests for up to SHUTDOWN_GRACE_SECS (25): stop with -t 30 or more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/codex-sub-proxy"]
