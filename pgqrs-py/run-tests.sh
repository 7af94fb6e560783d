#!/usr/bin/env bash
# Builds the `pgqrs` Python package into a virtualenv and runs its pytest suite against
# the local Postgres. Usage: pgqrs-py/run-tests.sh [--release] [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${PGQRS_PY_VENV:-$here/../target/py-venv}"
profile=()
if [[ "${1:-}" == "--release" ]]; then profile=(--release); shift; fi

if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    'maturin>=1.9,<2' 'pytest>=8' 'pytest-asyncio>=1.0'

# The offline query data in .sqlx/ is enough to build; no database needed for that.
export SQLX_OFFLINE=true
(cd "$here" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
    "$venv/bin/maturin" develop --quiet "${profile[@]}")
cd "$here" && "$venv/bin/python" -m pytest -q "$@"
