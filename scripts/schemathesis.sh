#!/usr/bin/env bash
# The API contract against the real server: starts `drover server` (control plane only, no
# agent, so nothing it is asked can start a container) on a free loopback port with a
# throwaway data directory, and runs schemathesis with all its checks against the OpenAPI
# document that server serves. Every request goes to that loopback server and nowhere else.
#   scripts/schemathesis.sh [extra `st run` args]
# Environment: DROVER_BIN (default target/debug/drover, built if missing), ST_MAX_EXAMPLES
# (default 25 per operation), ST_MAX_TIME and ST_CREDENTIALS_MAX_TIME (seconds of the two
# passes, default 170 and 40), ST_SEED (default 1), ST_VENV (default
# /tmp/drover-schemathesis-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# hypothesis pinned too: 6.170.17 (the newest when this was written) fails inside its own
# optimiser on some runs (IndexError in `attempt_replace`), an error of the tool, not a finding.
HYPOTHESIS_VERSION=6.135.33
VENV=${ST_VENV:-/tmp/drover-schemathesis-venv}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${DROVER_BIN:-$TARGET/debug/drover}

# schemathesis, pinned, in a venv of its own (pip may refuse system-wide installs).
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" ||
    ! "$VENV/bin/pip" show hypothesis 2>/dev/null | grep -qx "Version: $HYPOTHESIS_VERSION"; then
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip python3-venv >/dev/null
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        "hypothesis==$HYPOTHESIS_VERSION"
fi
# hypothesis's targeted optimisation (which schemathesis feeds with each operation's success
# rate, to steer generation) fails inside hypothesis in both versions on some runs
# (IndexError in `attempt_replace`), a crash of the tool reported as a runtime error. It only
# steers which inputs come next; every check still runs on every input. Turned off in the
# venv's sitecustomize.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat >"$SITE/sitecustomize.py" <<'PY'
try:
    from hypothesis.internal.conjecture.engine import ConjectureRunner

    ConjectureRunner.optimise_targets = lambda self: None
except Exception:  # a hypothesis without it: nothing to turn off
    pass
PY

if [ ! -x "$BIN" ]; then
    cargo build -p drover
fi

WORK=$(mktemp -d /tmp/drover-schemathesis.XXXXXX)
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh server (its own data directory, port and CLI config, so the first start's config
# file never touches the user's); sets URL and TOKEN (the first admin's API key).
start_server() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    URL="http://127.0.0.1:$PORT"
    DROVER_CONFIG="$dir/cli.json" "$BIN" server --listen "127.0.0.1:$PORT" \
        --data-dir "$dir/data" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    LOG="$dir/server.log"
    TOKEN=
    for _ in $(seq 1 100); do
        TOKEN=$(sed -n 's/^admin token (shown once, stored only as a hash): //p' "$LOG")
        [ -n "$TOKEN" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$TOKEN" ]; then
        echo "schemathesis.sh: the server did not start:" >&2
        cat "$LOG" >&2
        exit 1
    fi
}

# `st run` with every check against the running server; extra args narrow it. Seeded and
# without a database of earlier runs' examples, so a run is the same each time. The
# `filter_too_much` health check is about generation, not the API: free-form path parameters
# (names) lose many drawn strings to what cannot go in a URL path, and hypothesis sometimes
# gives up on an operation for that alone.
run_st() {
    local name=$1 max_time=$2
    shift 2
    local status=0
    "$VENV/bin/st" --config-file scripts/schemathesis.toml run "$URL/v1/openapi.json" \
        --checks all \
        --header "Authorization: Bearer $TOKEN" \
        --max-examples "${ST_MAX_EXAMPLES:-25}" \
        --max-time "$max_time" \
        --workers 2 \
        --seed "${ST_SEED:-1}" \
        --request-timeout 10 \
        --generation-database none \
        --suppress-health-check filter_too_much \
        --report-dir "$WORK/report-$name" \
        "$@" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "schemathesis.sh: $name failed (exit $status); the server's log:" >&2
        tail -n 50 "$LOG" >&2
    fi
    return "$status"
}

# The operations that revoke or change credentials: the run's own API key (listed by
# GET /v1/apikeys, so stateful links find it), the admin user and its password. Run with the
# rest, they would end the run's credential early and leave every later request a 401; so
# they get a pass of their own, on a server of their own.
CREDENTIALS='^users_(remove_key|end_session|remove_user|set_password|own_password)$'

failed=0
start_server main
run_st main "${ST_MAX_TIME:-170}" --exclude-operation-id-regex "$CREDENTIALS" "$@" || failed=1
stop_server
start_server credentials
run_st credentials "${ST_CREDENTIALS_MAX_TIME:-40}" --include-operation-id-regex "$CREDENTIALS" "$@" || failed=1
stop_server
if [ "$failed" -ne 0 ]; then
    echo "schemathesis.sh: FAILED" >&2
    exit 1
fi
echo "schemathesis.sh: every check passed"
