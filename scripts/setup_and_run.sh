#!/usr/bin/env bash
# One command from a fresh clone to a finished study on the built-in demo photos:
# install, generate the demo data set, run the study. Works offline after install.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh
export KEDRO_DISABLE_TELEMETRY=1
.venv/bin/kedro run --pipeline=demo_data
.venv/bin/kedro run "$@"
