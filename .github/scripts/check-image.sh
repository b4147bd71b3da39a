#!/bin/sh
# Tries a built image the way an operator would use it: checks its configuration (non-root user,
# port, volume, healthcheck), that it turns healthy, that caller auth holds, that the credentials
# land on the volume with mode 0600, and that SIGTERM stops it with exit code 0.
# Needs a Docker engine (GitHub's runners; not this project's CI machine). Usage:
#   sh .github/scripts/check-image.sh IMAGE
set -eu
image=${1:?usage: check-image.sh IMAGE}
name=codex-sub-proxy-check-$$
volume=codex-sub-proxy-check-$$
key=ci-key-$$
port=3999

cleanup() {
    docker rm -f "$name" > /dev/null 2>&1 || true
    docker volume rm -f "$volume" > /dev/null 2>&1 || true
}
trap cleanup EXIT

fail() {
    echo "check-image: $*" >&2
    docker logs "$name" 2>&1 | tail -n 40 >&2 || true
    exit 1
}

echo "== image configuration"
docker run --rm "$image" --version
user=$(docker image inspect --format '{{.Config.User}}' "$image")
[ "$user" = "65532:65532" ] || fail "user is '$user', want 65532:65532"
docker image inspect --format '{{json .Config.ExposedPorts}}' "$image" | grep -q '"3000/tcp"' || fail "port 3000 is not exposed"
docker image inspect --format '{{json .Config.Volumes}}' "$image" | grep -q '"/data"' || fail "/data is not a volume"
docker image inspect --format '{{json .Config.Healthcheck}}' "$image" | grep -q -- '--healthcheck' || fail "no HEALTHCHECK"
size=$(docker image inspect --format '{{.Size}}' "$image")
echo "user $user, image size $size bytes"

echo "== running: health, caller auth, credentials on the volume"
docker volume create "$volume" > /dev/null
docker run -d --name "$name" --read-only --cap-drop ALL --security-opt no-new-privileges \
    -e PROXY_API_KEY="$key" -e OPENAI_ACCESS_TOKEN=not-a-real-token \
    -e CODEX_BASE_URL=http://127.0.0.1:9 -v "$volume:/data" -p "127.0.0.1:$port:3000" \
    --health-interval 1s --health-start-period 1s "$image" > /dev/null
tries=0
until [ "$(docker inspect --format '{{.State.Health.Status}}' "$name")" = healthy ]; do
    tries=$((tries + 1))
    [ "$tries" -le 60 ] || fail "not healthy after 60 s"
    [ "$(docker inspect --format '{{.State.Running}}' "$name")" = true ] || fail "the container exited"
    sleep 1
done
echo "healthy after ~${tries}s"
base=http://127.0.0.1:$port
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/healthz")" = 200 ] || fail "/healthz is not 200"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/models")" = 401 ] || fail "/v1/models without a key is not 401"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base/v1/models")" = 200 ] || fail "/v1/models with the key is not 200"
docker run --rm -v "$volume:/data:ro" --entrypoint /busybox/ls gcr.io/distroless/static-debian12:debug-nonroot -ln /data > "${TMPDIR:-/tmp}/$name.ls" 2>&1 || true
cat "${TMPDIR:-/tmp}/$name.ls"
grep -Eq '^-rw------- +1 +65532 +65532 .* credentials\.json$' "${TMPDIR:-/tmp}/$name.ls" || fail "credentials.json is not 0600 and owned by 65532 on the volume"
rm -f "${TMPDIR:-/tmp}/$name.ls"

echo "== SIGTERM"
docker stop -t 30 "$name" > /dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
if docker logs "$name" 2>&1 | grep -q -e "$key" -e not-a-real-token; then
    fail "a secret appears in the logs"
fi
echo "image checks passed"
