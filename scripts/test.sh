#!/usr/bin/env bash
# The test command: set-up, lint, then every test (unit, molecule scenarios of every
# role, sandbox integration, faults) in one pytest run. Needs root (rootful podman).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1
export GPUFORGE_STATE_DIR=${GPUFORGE_STATE_DIR:-$PWD/.cache/state}
bin=.venv/bin

echo "== lint" >&2
"$bin/yamllint" -s .
"$bin/ansible-lint" --format=pep8 -q
"$bin/ruff" check .
"$bin/mypy" toolkit

echo "== sandbox images" >&2
"$bin/gpuforge" sandbox image --distro debian12
"$bin/gpuforge" sandbox image --distro debian13

echo "== tests" >&2
# Two xdist workers: much of a provisioning test is waiting (apt, boots, probes).
# Phase 1, unit tests and every role's molecule scenario, one scenario at a time per
# worker; the llama_cpp scenario compiles llama.cpp into the controller cache.
# Phase 2, sandbox integration and faults, a whole file per worker (a file shares its
# sandbox hosts between its tests), installing llama.cpp from that cache.
# Everything is in the gate, including the tests that serve a real model with the
# llama.cpp build (marker llama_build; `pytest -m llama_build` runs them alone).
workers=${GPUFORGE_TEST_WORKERS:-2}
status=0
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist load "$@" \
  tests/unit tests/molecule || status=$?
"$bin/pytest" -p no:cacheprovider -ra -v -n "$workers" --dist loadfile "$@" \
  tests/integration tests/faults || status=$?
exit "$status"
