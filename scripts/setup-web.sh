#!/usr/bin/env bash
# Install the agent desk's browser packages (web/package-lock.json) into web/node_modules
# with the machine's npm. Idempotent: skipped while the lockfile is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../web"
stamp=node_modules/.ccserver-installed
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "setup: npm is missing: the desk's packages (web/package.json) need Node.js 18+ and npm" >&2
  exit 1
fi
echo "setup: installing the desk's npm packages"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup: npm ci failed" >&2
  exit 1
fi
echo "$want" > "$stamp"
