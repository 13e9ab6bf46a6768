#!/usr/bin/env bash
# Create .venv and install the project editable with its test and dev extras.
# Idempotent: skipped while pyproject.toml, setup.py and the Cython sources are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.ccserver-installed
shopt -s nullglob
want=$(cat pyproject.toml setup.py acd_core/*.pyx acd_core/*.pxd | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
echo "setup: installing ccserver into .venv"
# pip's output goes to a log that is shown only when it fails; a failed install stops here.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pip_install() {
  if ! .venv/bin/python -m pip install -q "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install $* failed" >&2
    exit 1
  fi
}
pip_install --upgrade pip
pip_install -e '.[dev]'
.venv/bin/python -c 'import ccserver, acd_core' # fails loudly when the install did not work
echo "$want" > "$stamp"
