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
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v 'is ignored' || true
.venv/bin/python -c 'import ccserver, acd_core' # fails loudly when the install did not work
echo "$want" > "$stamp"
