#!/usr/bin/env bash
# Builds the web UI (`ui/`, Vite + TypeScript + Preact) into `ui/dist`, which the server
# embeds when it is compiled: `npm ci` from the committed lock file, then `npm run build`
# (type check, bundle, and the size printed, gzip'd). Needs Node.js 18+ and npm.
#   scripts/build-ui.sh
set -euo pipefail
cd "$(dirname "$0")/../ui"

if ! command -v npm >/dev/null 2>&1; then
    echo "build-ui.sh: npm is missing: install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
# Playwright's own browser download is never used (the tests drive Debian's chromium).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund --loglevel=error
npm run build
