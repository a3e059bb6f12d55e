#!/usr/bin/env bash
# Creates .venv with the pinned tools of the packaging checks (scripts/requirements-packaging.txt),
# and recreates it when that file changes. Needs python3 with venv (scripts/install-deps.sh test
# installs python3-venv on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
req=scripts/requirements-packaging.txt
venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -x $venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "venv: $venv is up to date"
  exit 0
fi
echo "venv: creating $venv from $req"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
echo "$want" > "$stamp"
echo "venv: done"
