#!/usr/bin/env bash
# The test command: make sure a Docker engine runs (installing Debian's docker.io if none is
# found, which needs root), build the local test images and the web UI, then run every test of the
# workspace — unit tests and end-to-end tests against the real engine —, the chaos suite's
# short form (`xtask chaos --short`) and then the API contract
# (scripts/schemathesis.sh: schemathesis against a loopback `drover server`).
#   scripts/test.sh [extra cargo nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-docker.sh --with-registry
scripts/build-test-images.sh
# The monitoring test checks /metrics with promtool and scrapes it with a real Prometheus.
if ! command -v promtool >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: promtool is missing: apt-get install prometheus (as root)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
fi
# The web UI (embedded in the server binary; its browser test, e2e `ui.rs`, drives Debian's
# chromium with playwright-core from ui/node_modules).
scripts/build-ui.sh
if ! [ -x /usr/bin/chromium ]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: chromium is missing: apt-get install chromium fonts-liberation (as root)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi
# The LDAP tests run their own slapd (Debian's; no directory of its own is configured).
if ! command -v slapd >/dev/null 2>&1 && ! [ -x /usr/sbin/slapd ]; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: slapd is missing: apt-get install slapd ldap-utils (as root)" >&2
        exit 1
    fi
    echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
fi

# The ingress test gets a tls: auto certificate from pebble, Debian's ACME test directory.
if ! command -v pebble >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: pebble is missing: apt-get install pebble (as root)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null
fi

status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
    echo "test.sh: cargo-nextest not found, using cargo test" >&2
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# The chaos suite's short form (`xtask chaos --short`, about 5 minutes): the hostile-input
# replay (every fuzz corpus input and the generated big ones through the parsers: no panic, no
# death, at most 64 MiB of heap each; the 100 ms per input is held by release runs), then a
# few rounds of every fault scenario on a three-host cluster, with the debug build the tests
# use. A missed timing target is printed, not failed; a broken invariant fails.
cargo build -q -p drover
DROVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/drover" cargo run -q -p xtask -- chaos --short || status=1

# The API contract: schemathesis against a real `drover server` on loopback (no agent).
scripts/schemathesis.sh || status=1
exit "$status"
