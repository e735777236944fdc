#!/usr/bin/env bash
# Make sure a Docker engine answers on the local socket (Debian's docker.io, engine 20.10).
#   scripts/install-docker.sh [--with-compose] [--with-registry]
# - engine already answering (`docker version` reaches the server): says so, exits 0;
# - no `dockerd`: apt-get installs docker.io (needs root);
# - starts `dockerd --host unix:///var/run/docker.sock` in the background, logs to
#   ${DOCKERD_LOG:-/tmp/dockerd.log}, and waits up to 30 s for it to answer.
# --with-compose also installs Debian's docker-compose (1.29) if it is missing;
# --with-registry Debian's docker-registry and apache2-utils (htpasswd), for the tests of
# private registries.
# Idempotent. Messages go to stderr.
set -euo pipefail

say() { echo "install-docker: $*" >&2; }

with_compose=false
with_registry=false
for arg in "$@"; do
    case "$arg" in
        --with-compose) with_compose=true ;;
        --with-registry) with_registry=true ;;
        -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) say "unknown argument: $arg"; exit 2 ;;
    esac
done

SOCK=/var/run/docker.sock
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
apt_updated=false

apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        say "error: installing $* needs root"
        exit 1
    fi
    if ! $apt_updated; then
        say "running apt-get update"
        apt-get update >&2
        apt_updated=true
    fi
    say "installing $* (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}

engine_answers() {
    command -v docker >/dev/null && docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

if $with_compose && ! command -v docker-compose >/dev/null; then
    apt_install docker-compose
fi

if $with_registry && { ! command -v docker-registry >/dev/null || ! command -v htpasswd >/dev/null; }; then
    apt_install docker-registry apache2-utils
fi

if engine_answers; then
    say "docker engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null), ${DOCKER_HOST:-unix://$SOCK})"
    exit 0
fi

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    apt_install docker.io
fi

if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != "unix://$SOCK" ]]; then
    say "note: DOCKER_HOST=$DOCKER_HOST; starting the local engine on unix://$SOCK anyway"
fi

say "starting dockerd --host unix://$SOCK (log: $DOCKERD_LOG)"
nohup dockerd --host "unix://$SOCK" >"$DOCKERD_LOG" 2>&1 </dev/null &
dockerd_pid=$!

for _ in $(seq 1 150); do
    if DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        say "docker engine $(DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}') is up (dockerd pid $dockerd_pid)"
        exit 0
    fi
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
        say "error: dockerd exited; last lines of $DOCKERD_LOG:"
        tail -n 20 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
    sleep 0.2
done
say "error: dockerd did not answer within 30 s; last lines of $DOCKERD_LOG:"
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 1
