#!/usr/bin/env bash
# The main job on the embedded default: set-up, then a local sandbox host serving an
# open-weight model behind an authenticated HTTPS endpoint (`gpuforge demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/gpuforge demo "$@"
