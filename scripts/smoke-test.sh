#!/bin/sh
# Smoke test for a running codex-sub-proxy: health, caller authentication, models, and
# /v1/responses and /v1/chat/completions, streaming and not. POSIX sh and curl, nothing else.
#
#   BASE_URL=http://127.0.0.1:3000 PROXY_API_KEY=... sh scripts/smoke-test.sh
#
# Optional: MODEL (default gpt-5.5; must be listed by /v1/models), SMOKE_MAX_TIME (seconds per
# request, default 60). Against a real backend this sends four tiny prompts through the
# subscription. The key is handed to curl in a private file, never on its command line.
# Exits 0 when every check passed; prints "N passed, N failed" last.
set -eu

: "${BASE_URL:?set BASE_URL, e.g. http://127.0.0.1:3000}"
: "${PROXY_API_KEY:?set PROXY_API_KEY to a caller key the proxy accepts}"
MODEL=${MODEL:-gpt-5.5}
MAX_TIME=${SMOKE_MAX_TIME:-60}
base=${BASE_URL%/}

command -v curl >/dev/null 2>&1 || { echo "smoke-test: curl is required" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
umask 077
printf 'Authorization: Bearer %s\n' "$PROXY_API_KEY" > "$tmp/key"
printf 'Authorization: Bearer not-%s\n' "$PROXY_API_KEY" > "$tmp/wrong-key"

passed=0
failed=0
status=000

# call METHOD PATH AUTH [BODY]: AUTH is key, wrong-key or none. Sets $status; the answer's
# headers and body land in $tmp/headers and $tmp/body.
call() {
    method=$1 path=$2 auth=$3 body=${4-}
    set -- --silent --show-error --max-time "$MAX_TIME" --request "$method" \
        --output "$tmp/body" --dump-header "$tmp/headers" --write-out '%{http_code}'
    if [ "$auth" != none ]; then
        set -- "$@" --header "@$tmp/$auth"
    fi
    if [ -n "$body" ]; then
        set -- "$@" --header 'Content-Type: application/json' --data-binary "$body"
    fi
    : > "$tmp/body"
    : > "$tmp/headers"
    status=$(curl "$@" "$base$path" 2> "$tmp/curl-error") || {
        status=000
        cat "$tmp/curl-error" > "$tmp/body"
    }
}

ok() {
    passed=$((passed + 1))
    echo "ok   $1"
}

not_ok() {
    failed=$((failed + 1))
    echo "FAIL $1: $2"
    sed -n '1,12p' "$tmp/body" | cut -c 1-300 | sed 's/^/     | /'
}

# check NAME WANT_STATUS PATTERN...: the status, then each grep -E pattern in the body.
check() {
    name=$1 want=$2
    shift 2
    if [ "$status" != "$want" ]; then
        not_ok "$name" "status $status, want $want"
        return 0
    fi
    for pattern in "$@"; do
        if ! grep -Eq -- "$pattern" "$tmp/body"; then
            not_ok "$name" "body lacks /$pattern/"
            return 0
        fi
    done
    ok "$name"
}

# header_check NAME PATTERN: a grep -E pattern (case-insensitive) in the last answer's headers.
header_check() {
    if grep -Eiq -- "$2" "$tmp/headers"; then
        ok "$1"
    else
        not_ok "$1" "headers lack /$2/"
    fi
}

q='"[[:space:]]*:[[:space:]]*'

echo "smoke test of $base (model $MODEL)"

call GET /healthz none
check "GET /healthz answers without a key" 200 "\"ok$q"'true'

call GET /v1/models none
check "GET /v1/models without a key is refused" 401 'invalid_api_key'
header_check "401 carries WWW-Authenticate: Bearer" '^www-authenticate:[[:space:]]*Bearer'

call GET /v1/models wrong-key
check "GET /v1/models with a wrong key is refused" 401 'invalid_api_key'

call GET /v1/models key
check "GET /v1/models lists $MODEL" 200 "\"object$q\"list\"" "\"id$q\"$MODEL\""

call GET "/v1/models/$MODEL" key
check "GET /v1/models/$MODEL" 200 "\"id$q\"$MODEL\""

call POST /v1/chat/completions key \
    "{\"model\":\"$MODEL\",\"n\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
check "chat with n=2 is a 400 naming the parameter" 400 "\"param$q\"n\"" '"error"'

call POST /v1/responses key \
    "{\"model\":\"$MODEL\",\"input\":\"Reply with one word: pong\"}"
check "POST /v1/responses" 200 "\"object$q\"response\"" "\"status$q\"completed\"" \
    "\"type$q\"output_text\""

call POST /v1/responses key \
    "{\"model\":\"$MODEL\",\"input\":\"Reply with one word: pong\",\"stream\":true}"
check "POST /v1/responses, streaming" 200 '^event: response\.created' \
    '^event: response\.output_text\.delta' '^event: response\.completed'
header_check "the stream is text/event-stream" '^content-type:[[:space:]]*text/event-stream'

call POST /v1/chat/completions key \
    "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Reply with one word: pong\"}]}"
check "POST /v1/chat/completions" 200 "\"object$q\"chat\\.completion\"" \
    "\"role$q\"assistant\"" "\"finish_reason$q\"stop\""

call POST /v1/chat/completions key \
    "{\"model\":\"$MODEL\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Reply with one word: pong\"}]}"
check "POST /v1/chat/completions, streaming" 200 "\"object$q\"chat\\.completion\\.chunk\"" \
    "\"content$q\"[^\"]" "\"finish_reason$q\"stop\"" '^data: \[DONE\]'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
