#!/usr/bin/env bash
# Creates .venv (if needed) and installs the project with its test tools into it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"transfer-study needs Python >= 3.10; {sys.executable} is {sys.version.split()[0]}.")
PY

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "Installed into $(pwd)/.venv"
