#!/usr/bin/env bash
# The quick start: make sure a Docker engine runs (installs and starts Debian's docker.io when
# none answers — it says so, and needs root), build the web UI and Drover, and run `drover up`.
#   scripts/up.sh [drover up flags, e.g. --listen 0.0.0.0:7480]
# With Docker already running, the binary alone does the same: `drover up`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-docker.sh
# The web UI first: the server binary embeds ui/dist.
scripts/build-ui.sh
cargo build --release -p drover
exec "${CARGO_TARGET_DIR:-target}/release/drover" up "$@"
